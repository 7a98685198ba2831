//! What Jinja2 reads differently from minijinja, settled on a template's source before minijinja
//! compiles it: Jinja2's newline normalisation, a syntax error of Jinja2's that minijinja lets
//! through (chained tests), and three constructs rewritten in place so that they evaluate as in
//! Jinja2 (`for` over none, `with` values seen from outside, and the operators whose rules differ:
//! ordering, `in` and `~`, see `compare.rs`). A rewrite stays on its lines, so errors still point
//! at the template's own lines.

use std::collections::BTreeSet;

use minijinja::machinery::{self, Token, ast};
use minijinja::syntax::SyntaxConfig;

/// The filter every `for` loop's iterable passes through: none stops the loop as in Jinja2.
pub const ITERABLE_FILTER: &str = "__paw_iterable";

/// A construct of the template that Jinja2 refuses, or that paw cannot render as Jinja2 does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub line: usize,
    pub message: String,
    pub help: &'static str,
}

/// How deep a template may nest: `elif` branches in all, or tokens in one tag. minijinja's parser
/// and compiler recurse once per level, and Jinja2 itself stops near 1,000 (Python's recursion
/// limit).
pub const MAX_NESTING: usize = 3000;

/// The stack that parsing and rendering need at MAX_NESTING, far past a runtime thread's 2 MiB:
/// render/mod.rs renders on a thread with this stack.
pub const STACK_BYTES: usize = 64 << 20;

/// The source minijinja must compile to render `source` as Jinja2 does.
pub fn prepare(source: &str) -> Result<String, Refusal> {
    let source = normalize_newlines(source);
    // A template minijinja cannot tokenize is left as it is: compiling it reports the error.
    if let Ok(tokens) = machinery::tokenize(&source, false, SyntaxConfig::default()).collect::<Result<Vec<_>, _>>() {
        refuse_deep_nesting(&tokens)?;
        refuse_chained_tests(&tokens)?;
    }
    // A template minijinja cannot parse is left as it is: compiling it reports the error.
    let Ok(template) = machinery::parse(&source, "<template>", SyntaxConfig::default()) else {
        return Ok(source);
    };
    refuse_namespace_values(std::slice::from_ref(&template))?;
    for expr in expressions(std::slice::from_ref(&template)) {
        refuse_repeated_keywords(expr)?;
    }
    let mut edits = Vec::new();
    for expr in expressions(std::slice::from_ref(&template)) {
        rewrite_comparisons(expr, &source, &mut edits);
    }
    visit(std::slice::from_ref(&template), &source, &mut edits)?;
    Ok(apply(source, edits))
}

/// Jinja2 turns `\r\n` and a lone `\r` into `\n` everywhere in the template (its default
/// `newline_sequence`); values from the context keep theirs.
fn normalize_newlines(source: &str) -> String {
    source.replace("\r\n", "\n").replace('\r', "\n")
}

type Tokens<'a> = [(Token<'a>, machinery::Span)];

fn refuse_deep_nesting(tokens: &Tokens) -> Result<(), Refusal> {
    let too_deep = |line: u16, what: &str| Refusal {
        line: usize::from(line),
        message: format!("the template nests too deep for paw: {what} (at most {MAX_NESTING})"),
        help: "split the chain: a dict lookup instead of many `elif`s, or `set` steps instead of one long expression",
    };
    let mut elifs = 0;
    let mut in_tag = 0;
    for (token, span) in tokens {
        match token {
            Token::Ident("elif") => elifs += 1,
            Token::VariableStart | Token::BlockStart => in_tag = 0,
            _ => in_tag += 1,
        }
        if elifs > MAX_NESTING {
            return Err(too_deep(span.start_line, "more `elif` branches"));
        }
        if in_tag > MAX_NESTING {
            return Err(too_deep(span.start_line, "more tokens in one tag"));
        }
    }
    Ok(())
}

/// Jinja2: "You cannot chain multiple tests with is" where a test's name is followed by `is`
/// (`x is string is sequence`); minijinja would test the first test's result.
fn refuse_chained_tests(tokens: &Tokens) -> Result<(), Refusal> {
    let is_ident =
        |index: usize, word: &str| matches!(tokens.get(index), Some((Token::Ident(ident), _)) if *ident == word);
    for start in (0..tokens.len()).filter(|&index| is_ident(index, "is")) {
        let mut next = start + 1;
        if is_ident(next, "not") {
            next += 1;
        }
        if !matches!(tokens.get(next), Some((Token::Ident(_), _))) {
            continue;
        }
        next += 1;
        while matches!(tokens.get(next), Some((Token::Dot, _)))
            && matches!(tokens.get(next + 1), Some((Token::Ident(_), _)))
        {
            next += 2;
        }
        if is_ident(next, "is") {
            return Err(Refusal {
                line: usize::from(tokens[next].1.start_line),
                message: "You cannot chain multiple tests with is (Jinja2's syntax error)".into(),
                help: "test once, or join two tests with `and`: `x is string and x is lower`",
            });
        }
    }
    Ok(())
}

/// Text to put in place of `start..end` of the source.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn apply(mut source: String, mut edits: Vec<Edit>) -> String {
    // From the end, so that each edit's offsets still hold; an insertion after a replacement
    // that starts at the same place stays after it.
    edits.sort_by_key(|edit| (edit.start, edit.end));
    for edit in edits.into_iter().rev() {
        source.replace_range(edit.start..edit.end, &edit.text);
    }
    source
}

/// The edits of the statements themselves: a `for` loop's iterable passes through
/// `ITERABLE_FILTER`, a `with`'s assignments are put in Jinja2's order.
fn visit(statements: &[ast::Stmt], source: &str, edits: &mut Vec<Edit>) -> Result<(), Refusal> {
    for statement in every_statement(statements) {
        match statement {
            ast::Stmt::ForLoop(for_loop) => {
                let (start, end) = extent(&for_loop.iter);
                edits.push(Edit { start, end: start, text: "(".into() });
                edits.push(Edit { start: end, end, text: format!(")|{ITERABLE_FILTER}") });
            }
            ast::Stmt::WithBlock(with) => {
                let reordered = reorder_with(with, source, edits)?;
                edits.extend(reordered);
            }
            _ => {}
        }
    }
    Ok(())
}

/// A statement's own expressions, and the bodies of statements it holds.
fn parts<'s, 'a>(statement: &'s ast::Stmt<'a>) -> (Vec<&'s ast::Expr<'a>>, Vec<&'s [ast::Stmt<'a>]>) {
    match statement {
        ast::Stmt::Template(template) => (Vec::new(), vec![&template.children]),
        ast::Stmt::EmitExpr(emit) => (vec![&emit.expr], Vec::new()),
        ast::Stmt::ForLoop(for_loop) => (
            std::iter::once(&for_loop.iter).chain(&for_loop.filter_expr).collect(),
            vec![&for_loop.body, &for_loop.else_body],
        ),
        ast::Stmt::IfCond(cond) => (vec![&cond.expr], vec![&cond.true_body, &cond.false_body]),
        ast::Stmt::WithBlock(with) => (with.assignments.iter().map(|(_, value)| value).collect(), vec![&with.body]),
        ast::Stmt::Set(set) => (vec![&set.expr], Vec::new()),
        ast::Stmt::SetBlock(set) => (set.filter.iter().collect(), vec![&set.body]),
        ast::Stmt::AutoEscape(block) => (Vec::new(), vec![&block.body]),
        ast::Stmt::FilterBlock(block) => (vec![&block.filter], vec![&block.body]),
        ast::Stmt::Block(block) => (Vec::new(), vec![&block.body]),
        ast::Stmt::Macro(definition) => (definition.defaults.iter().collect(), vec![&definition.body]),
        ast::Stmt::CallBlock(call) => {
            (std::iter::once(&call.call.expr).chain(call_args(&call.call.args)).collect(), vec![&call.macro_decl.body])
        }
        ast::Stmt::Do(call) => {
            (std::iter::once(&call.call.expr).chain(call_args(&call.call.args)).collect(), Vec::new())
        }
        _ => (Vec::new(), Vec::new()),
    }
}

/// Every statement, those nested in others' bodies too, each before the ones it holds.
fn every_statement<'s, 'a>(statements: &'s [ast::Stmt<'a>]) -> Vec<&'s ast::Stmt<'a>> {
    let mut found = Vec::new();
    for statement in statements {
        found.push(statement);
        for body in parts(statement).1 {
            found.extend(every_statement(body));
        }
    }
    found
}

/// Every expression of the statements, those of nested statements too.
fn expressions<'s, 'a>(statements: &'s [ast::Stmt<'a>]) -> Vec<&'s ast::Expr<'a>> {
    every_statement(statements).into_iter().flat_map(|statement| parts(statement).0).collect()
}

fn call_args<'e, 'a>(args: &'e [ast::CallArg<'a>]) -> impl Iterator<Item = &'e ast::Expr<'a>> {
    args.iter().map(|arg| match arg {
        ast::CallArg::Pos(expr)
        | ast::CallArg::Kwarg(_, expr)
        | ast::CallArg::PosSplat(expr)
        | ast::CallArg::KwargSplat(expr) => expr,
    })
}

/// Each `+`, `*` and `**` becomes a call of `compare::ARITHMETIC_FUNCTION`, which refuses what
/// Python refuses (`"a" * 0.5`, a float's overflow). Each `~` in `expr` becomes a call of `compare::CONCAT_FUNCTION`, which makes text of its
/// operands as Python's `str()` does (`1e+300`, not 300 digits). Each ordering comparison and `in`
/// (`a < b`, `a not in b`, or a chain `a < b <= c`) becomes a call of
/// `compare::COMPARE_FUNCTION`, which orders as Python does and raises where it raises. Only the
/// text around the operands changes: the name before the first, the operators, the `)` after the
/// last; parentheses around an operand stay with it.
fn rewrite_comparisons(expr: &ast::Expr, source: &str, edits: &mut Vec<Edit>) {
    // `a not in b` is `not (a in b)` to the parser, and `not in` in the source: the call takes it
    // from the source, so the negation stays.
    let ordering = |op: &ast::BinOpKind| {
        matches!(
            op,
            ast::BinOpKind::Lt | ast::BinOpKind::Lte | ast::BinOpKind::Gt | ast::BinOpKind::Gte | ast::BinOpKind::In
        )
    };
    use super::compare::{ARITHMETIC_FUNCTION, COMPARE_FUNCTION, CONCAT_FUNCTION};
    // The function, its operands, and whether it takes the operators between them.
    let call: Option<(&str, Vec<&ast::Expr>, bool)> = match expr {
        ast::Expr::BinOp(op) if ordering(&op.op) => Some((COMPARE_FUNCTION, vec![&op.left, &op.right], true)),
        ast::Expr::Compare(compare) => Some((
            COMPARE_FUNCTION,
            std::iter::once(&compare.expr).chain(compare.ops.iter().map(|op| &op.expr)).collect(),
            true,
        )),
        ast::Expr::BinOp(op) if matches!(op.op, ast::BinOpKind::Concat) => {
            Some((CONCAT_FUNCTION, vec![&op.left, &op.right], false))
        }
        ast::Expr::BinOp(op) if matches!(op.op, ast::BinOpKind::Add | ast::BinOpKind::Mul | ast::BinOpKind::Pow) => {
            Some((ARITHMETIC_FUNCTION, vec![&op.left, &op.right], true))
        }
        _ => None,
    };
    if let Some((function, operands, with_ops)) = call {
        let extents: Vec<(usize, usize)> = operands.iter().map(|operand| extent(operand)).collect();
        let mut start = extents[0].0;
        let mut end = extents[extents.len() - 1].1;
        let last = extents.len() - 2;
        for (index, pair) in extents.windows(2).enumerate() {
            let (gap_start, gap_end) = (pair[0].1, pair[1].0);
            let gap = &source[gap_start..gap_end];
            let around = |c: char| matches!(c, ')' | '(') || c.is_whitespace();
            let op_start = gap.find(|c: char| !around(c)).unwrap_or(0);
            let op_end = gap.rfind(|c: char| !around(c)).map_or(gap.len(), |at| at + 1);
            let op = gap[op_start..op_end].split_whitespace().collect::<Vec<_>>().join(" ");
            let text = if with_ops { format!(", \"{op}\",") } else { ",".to_string() };
            edits.push(Edit { start: gap_start + op_start, end: gap_start + op_end, text });
            // Parentheses around the first operand open before it, around the last close after it.
            if index == 0 {
                for _ in gap[..op_start].matches(')') {
                    start = source[..start].trim_end().strip_suffix('(').map_or(start, str::len);
                }
            }
            if index == last {
                for _ in gap[op_end..].matches('(') {
                    let rest = source[end..].trim_start();
                    end = rest.strip_prefix(')').map_or(end, |after| source.len() - after.len());
                }
            }
        }
        edits.push(Edit { start, end: start, text: format!("{function}(") });
        edits.push(Edit { start: end, end, text: ")".into() });
    }
    for child in children(expr) {
        rewrite_comparisons(child, source, edits);
    }
}

/// Jinja2: "keyword argument repeated" (Python's syntax error) where a call of a function or a
/// macro names a keyword twice; minijinja keeps the last, as Jinja2 does for filters and tests.
fn refuse_repeated_keywords(expr: &ast::Expr) -> Result<(), Refusal> {
    let args = match expr {
        ast::Expr::Call(call) => call.args.as_slice(),
        _ => &[],
    };
    let mut seen = BTreeSet::new();
    for arg in args {
        if let ast::CallArg::Kwarg(name, value) = arg
            && !seen.insert(*name)
        {
            return Err(Refusal {
                line: usize::from(value.span().start_line),
                message: format!("keyword argument repeated: {name} (Jinja2's syntax error)"),
                help: "give each keyword once",
            });
        }
    }
    children(expr).into_iter().try_for_each(refuse_repeated_keywords)
}

/// Jinja2's namespace is no dict: it prints as `<Namespace {...}>`, and iterating it, sorting it
/// or taking its length raise; minijinja's is a dict in all of these. So a namespace is refused
/// anywhere but where it is made into a name (`{% set ns = namespace() %}`), read or set by
/// attribute (`ns.count`), or passed to a macro.
fn refuse_namespace_values(statements: &[ast::Stmt]) -> Result<(), Refusal> {
    let is_namespace_call = |expr: &ast::Expr| matches!(expr, ast::Expr::Call(call) if matches!(&call.expr, ast::Expr::Var(var) if var.id == "namespace"));
    // The names `{% set name = namespace(...) %}` binds, and those calls.
    let mut names = BTreeSet::new();
    let mut bindings = Vec::new();
    for statement in every_statement(statements) {
        if let ast::Stmt::Set(set) = statement
            && is_namespace_call(&set.expr)
            && let ast::Expr::Var(var) = &set.target
        {
            names.insert(var.id);
            bindings.push(&set.expr);
        }
    }
    for expr in expressions(statements) {
        let bound = bindings.iter().any(|binding| std::ptr::eq(*binding, expr));
        check_namespace_use(expr, bound, &names, &is_namespace_call)?;
    }
    Ok(())
}

fn check_namespace_use(
    expr: &ast::Expr,
    bound: bool,
    names: &BTreeSet<&str>,
    is_namespace_call: &dyn Fn(&ast::Expr) -> bool,
) -> Result<(), Refusal> {
    let refusal = |expr: &ast::Expr| {
        Refusal {
        line: usize::from(expr.span().start_line),
        message: "paw does not support a namespace used as a value: Jinja2's namespace is no dict, and prints, iterates and sorts unlike one".into(),
        help: "name it once (`{% set ns = namespace(count=0) %}`), then read and set its attributes (`ns.count`)",
    }
    };
    let namespace =
        |expr: &ast::Expr| matches!(expr, ast::Expr::Var(var) if names.contains(var.id)) || is_namespace_call(expr);
    // A namespace has attributes, not a dict's methods.
    if let ast::Expr::Call(call) = expr
        && let ast::Expr::GetAttr(get) = &call.expr
        && namespace(&get.expr)
    {
        return Err(refusal(expr));
    }
    // What a namespace may be used for: its own attribute, an argument of a (macro's) call.
    let allowed: Vec<&ast::Expr> = match expr {
        ast::Expr::GetAttr(get) if namespace(&get.expr) => vec![&get.expr],
        ast::Expr::Call(call) if !is_namespace_call(expr) => {
            call_args(&call.args).filter(|arg| matches!(arg, ast::Expr::Var(_)) && namespace(arg)).collect()
        }
        _ => Vec::new(),
    };
    if !bound && namespace(expr) && matches!(expr, ast::Expr::Var(_)) || !bound && is_namespace_call(expr) {
        return Err(refusal(expr));
    }
    for child in children(expr) {
        if allowed.iter().any(|allowed| std::ptr::eq(*allowed, child)) {
            // The namespace itself is fine here; a call's own arguments are still checked.
            if let ast::Expr::Call(call) = child {
                for arg in call_args(&call.args) {
                    check_namespace_use(arg, false, names, is_namespace_call)?;
                }
            }
            continue;
        }
        check_namespace_use(child, false, names, is_namespace_call)?;
    }
    Ok(())
}

/// Jinja2 evaluates every value of `{% with a=1, c=b %}` before it binds any name, so `c` gets
/// the outer `b`; minijinja binds them one after another. Putting each value before the
/// assignments that bind the names it reads gives Jinja2's result; values that read each other's
/// names (`a=b, b=a`) have no such order and are refused.
/// The edits already made inside the assignments move with them.
fn reorder_with(with: &ast::WithBlock, source: &str, edits: &mut Vec<Edit>) -> Result<Option<Edit>, Refusal> {
    let assignments = &with.assignments;
    let binds: Vec<BTreeSet<&str>> = assignments.iter().map(|(target, _)| names(target)).collect();
    let reads: Vec<BTreeSet<&str>> = assignments.iter().map(|(_, value)| names(value)).collect();
    // Assignment i must come before j when value i reads a name that target j binds.
    let before = |i: usize, j: usize| i != j && !reads[i].is_disjoint(&binds[j]);
    let mut order: Vec<usize> = Vec::with_capacity(assignments.len());
    while order.len() < assignments.len() {
        let ready = (0..assignments.len())
            .find(|&j| !order.contains(&j) && (0..assignments.len()).all(|i| order.contains(&i) || !before(i, j)));
        let Some(next) = ready else {
            let (target, _) = &assignments[0];
            return Err(Refusal {
                line: usize::from(target.span().start_line),
                message: "the values of this `with` read each other's names; Jinja2 evaluates them all before binding any, which paw cannot reproduce".into(),
                help: "give the new names other names than the ones the values read, e.g. `{% with a2=b, b2=a %}`",
            });
        };
        order.push(next);
    }
    if order.iter().copied().eq(0..assignments.len()) {
        return Ok(None);
    }
    let mut text_of = |index: usize| {
        let (target, value) = &assignments[index];
        let (start, end) = (extent(target).0, extent(value).1);
        let (inside, outside): (Vec<Edit>, Vec<Edit>) =
            edits.drain(..).partition(|edit| start <= edit.start && edit.end <= end);
        *edits = outside;
        let inside = inside.into_iter().map(|edit| Edit { start: edit.start - start, end: edit.end - start, ..edit });
        apply(source[start..end].to_string(), inside.collect())
    };
    let start = extent(&assignments[0].0).0;
    let end = extent(&assignments[assignments.len() - 1].1).1;
    let mut text = order.iter().map(|&index| text_of(index)).collect::<Vec<_>>().join(", ");
    // The same number of lines, so that what follows keeps its line numbers.
    let missing = source[start..end].matches('\n').count().saturating_sub(text.matches('\n').count());
    text.push_str(&"\n".repeat(missing));
    Ok(Some(Edit { start, end, text }))
}

/// The names an expression reads (a target: the names it binds).
fn names<'a>(expr: &ast::Expr<'a>) -> BTreeSet<&'a str> {
    let mut found = BTreeSet::new();
    if let ast::Expr::Var(var) = expr {
        found.insert(var.id);
    }
    for child in children(expr) {
        found.extend(names(child));
    }
    found
}

/// Where an expression's text starts and ends: minijinja's span of a filter, call or attribute
/// starts at its own part (`|sort`), after the expression it applies to.
fn extent(expr: &ast::Expr) -> (usize, usize) {
    let span = expr.span();
    children(expr)
        .into_iter()
        .map(extent)
        .fold((span.start_offset as usize, span.end_offset as usize), |(start, end), (child_start, child_end)| {
            (start.min(child_start), end.max(child_end))
        })
}

fn children<'e, 'a>(expr: &'e ast::Expr<'a>) -> Vec<&'e ast::Expr<'a>> {
    let args = |args: &'e [ast::CallArg<'a>]| {
        args.iter().map(|arg| match arg {
            ast::CallArg::Pos(expr)
            | ast::CallArg::Kwarg(_, expr)
            | ast::CallArg::PosSplat(expr)
            | ast::CallArg::KwargSplat(expr) => expr,
        })
    };
    match expr {
        ast::Expr::Var(_) | ast::Expr::Const(_) => Vec::new(),
        ast::Expr::Slice(slice) => {
            std::iter::once(&slice.expr).chain([&slice.start, &slice.stop, &slice.step].into_iter().flatten()).collect()
        }
        ast::Expr::UnaryOp(op) => vec![&op.expr],
        ast::Expr::BinOp(op) => vec![&op.left, &op.right],
        ast::Expr::Compare(compare) => {
            std::iter::once(&compare.expr).chain(compare.ops.iter().map(|op| &op.expr)).collect()
        }
        ast::Expr::IfExpr(if_expr) => {
            [&if_expr.test_expr, &if_expr.true_expr].into_iter().chain(if_expr.false_expr.as_ref()).collect()
        }
        ast::Expr::Filter(filter) => filter.expr.iter().chain(args(&filter.args)).collect(),
        ast::Expr::Test(test) => std::iter::once(&test.expr).chain(args(&test.args)).collect(),
        ast::Expr::GetAttr(get) => vec![&get.expr],
        ast::Expr::GetItem(get) => vec![&get.expr, &get.subscript_expr],
        ast::Expr::Call(call) => std::iter::once(&call.expr).chain(args(&call.args)).collect(),
        ast::Expr::List(list) => list.items.iter().collect(),
        ast::Expr::Tuple(tuple) => tuple.items.iter().collect(),
        ast::Expr::Map(map) => map.keys.iter().chain(&map.values).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_jinja2s() {
        assert_eq!(prepare("a\r\nb\rc\n").unwrap(), "a\nb\nc\n");
    }

    #[test]
    fn loops_refuse_none_and_keep_their_lines() {
        let prepared = prepare("{% for x in items|sort if x %}\n{{ x }}{% endfor %}").unwrap();
        assert_eq!(prepared, "{% for x in (items|sort)|__paw_iterable if x %}\n{{ x }}{% endfor %}");
    }

    #[test]
    fn with_values_are_read_from_outside() {
        let prepared = prepare("{% with a=1, b=2, c=b,\n d=e, e=5 %}{{ c }}{% endwith %}").unwrap();
        assert_eq!(prepared, "{% with a=1, c=b, b=2, d=e, e=5\n %}{{ c }}{% endwith %}");
        assert_eq!(prepare("{% with a=1, b=2 %}{% endwith %}").unwrap(), "{% with a=1, b=2 %}{% endwith %}");
        let swap = prepare("\n{% with a=b, b=a %}{% endwith %}").unwrap_err();
        assert_eq!(swap.line, 2);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let on_render_stack = |source: String| {
            let thread = std::thread::Builder::new().stack_size(STACK_BYTES);
            thread.spawn(move || prepare(&source)).unwrap().join().unwrap()
        };
        let elifs = |n: usize| format!("{{% if a %}}{}{{% endif %}}", "{% elif a %}".repeat(n));
        assert!(on_render_stack(elifs(MAX_NESTING)).is_ok());
        assert!(on_render_stack(elifs(MAX_NESTING + 1)).unwrap_err().message.contains("`elif`"));
        let sum = format!("{{{{ 1{} }}}}", " + 1".repeat(MAX_NESTING));
        assert!(on_render_stack(sum).unwrap_err().message.contains("one tag"));
    }

    #[test]
    fn ordering_comparisons_call_python_s_order() {
        assert_eq!(prepare("{{ a < b }}").unwrap(), "{{ __paw_compare(a , \"<\", b) }}");
        assert_eq!(
            prepare("{{ (a) <= (b|length) }}{% if 1 < x >= 2 %}{% endif %}").unwrap(),
            "{{ __paw_compare((a) , \"<=\", (b|length)) }}{% if __paw_compare(1 , \"<\", x , \">=\", 2) %}{% endif %}"
        );
        assert_eq!(
            prepare("{{ not (a > b) < c == d }}").unwrap(),
            "{{ not __paw_compare((__paw_compare(a , \">\", b)) , \"<\", c , \"==\", d) }}"
        );
        assert_eq!(prepare("{{ a == b }}").unwrap(), "{{ a == b }}", "equality never raises");
        assert_eq!(prepare("{{ a~b ~ (c) }}").unwrap(), "{{ __paw_concat(__paw_concat(a,b) , (c)) }}");
        assert_eq!(prepare("{{ c not  in d }}").unwrap(), "{{ __paw_compare(c , \"not in\", d) }}");
    }

    #[test]
    fn a_namespace_may_be_named_inside_any_block() {
        let template = "{% filter upper %}{% set ns = namespace(a=1) %}{{ ns.a }}{% endfilter %}";
        assert!(prepare(template).is_ok());
        assert!(prepare("{% filter upper %}{{ namespace(a=1) }}{% endfilter %}").is_err());
    }

    #[test]
    fn chained_tests_are_refused() {
        assert_eq!(prepare("{{ x is string is sequence }}").unwrap_err().line, 1);
        assert_eq!(prepare("\n{{ x is not foo.bar is odd }}").unwrap_err().line, 2);
        assert!(prepare("{{ x is divisibleby(3) }} is {{ y is odd }}").is_ok());
    }
}
