"""Every link of a built mdbook that stays inside the book must lead to a file that exists, and
its #anchor to an id on that page. Prints each broken one as PAGE: LINK, and exits 1 if any."""

import html.parser
import pathlib
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        link = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag in ("img", "script") else None
        if link:
            self.links.append(link)


def main(root):
    root = pathlib.Path(root).resolve()
    pages = {}
    for path in root.rglob("*.html"):
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path] = page
    if not pages:
        print(f"check-book: no pages in {root}", file=sys.stderr)
        return 1
    broken = []
    for path, page in sorted(pages.items()):
        for link in page.links:
            parts = urllib.parse.urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("javascript:"):
                continue
            target = (path.parent / urllib.parse.unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(root) or not target.exists():
                broken.append(f"{path.relative_to(root)}: {link} (no such file in the book)")
            elif parts.fragment and target in pages and urllib.parse.unquote(parts.fragment) not in pages[target].ids:
                broken.append(f"{path.relative_to(root)}: {link} (no such anchor)")
    for line in broken:
        print(line, file=sys.stderr)
    if broken:
        print(f"check-book: {len(broken)} broken links in the book", file=sys.stderr)
        return 1
    print(f"check-book: {len(pages)} pages, every internal link leads somewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
