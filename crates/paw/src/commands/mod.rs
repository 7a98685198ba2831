//! One function per subcommand: each takes the context and its arguments, makes one library call,
//! and returns a report; `run` prints it and decides the exit code.

mod build;
mod catalog;
mod channel;
mod doctor;
mod images;
mod lifecycle;
mod notify;
mod packer;
mod regions;
mod render;
mod report;
mod steps;
mod verify;

use paw_core::engine::BuildOptions;
use paw_core::plan::Rebuild;

use paw_core::change::share::ShareRequest;
use paw_core::ops::channel::Change;
use paw_core::ops::prune::PruneOptions;

use crate::cli::{
    BaseAmiCommand, CatalogCommand, ChannelCommand, Cli, Command, ImagesCommand, LifecycleCommand, NotifyCommand,
    PackerCommand,
};
use crate::context::Context;
use crate::output::{self, Report};

/// Runs the command line; the exit code is the error kind's (paw_core::ErrorKind::exit_code), or,
/// for a run a signal stopped, the signal's.
pub fn run(cli: Cli) -> i32 {
    report_panics();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_command(cli)))
        .unwrap_or(paw_core::error::INTERNAL_ERROR_EXIT_CODE)
}

/// A panic is a bug in paw: one line that says so and where, not a backtrace (`RUST_BACKTRACE=1`
/// still shows one). A panic while a template renders is that render's error instead.
fn report_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if paw_core::render::panics_are_caught() {
            return;
        }
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            return default_hook(info);
        }
        let location = info.location().map(|at| format!(" at {}:{}", at.file(), at.line())).unwrap_or_default();
        eprintln!(
            "error: paw crashed{location}: {}\n  help: {}",
            paw_core::error::panic_message(info.payload()),
            paw_core::error::BUG_HELP
        );
    }));
}

fn run_command(cli: Cli) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime starts");
    let cx = Context::new(&cli);
    // `plan --detailed-exitcode`: 0 and 2 say what the plan holds, so every error is 1.
    let detailed = matches!(cli.command, Command::Plan { detailed_exitcode: true, .. });
    let result = runtime.block_on(dispatch(&cx, cli.command)).and_then(|report| {
        output::print(report.as_ref(), &cx.output);
        report.error().map_or(Ok(report.exit_code()), Err)
    });
    // What was done is told, whether the command then failed or not; a failed delivery is said,
    // and changes no exit code.
    for failure in runtime.block_on(cx.deliver_notices()).iter().filter_map(|delivery| delivery.failure()) {
        eprintln!("warning: {failure}");
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            if let Some(ci) = cx.output.ci {
                ci.annotate(&err);
            }
            match (err.kind, crate::signals::received()) {
                (paw_core::ErrorKind::Interrupted, Some(signal)) => paw_core::error::signal_exit_code(signal),
                _ if detailed => 1,
                (kind, _) => kind.exit_code(),
            }
        }
    }
}

async fn dispatch(cx: &Context, command: Command) -> paw_core::Result<Box<dyn Report + '_>> {
    Ok(match command {
        Command::Init { dir } => Box::new(steps::init(&dir)?),
        Command::Import { packer_dir, into } => Box::new(steps::import(&packer_dir, into)?),
        Command::Doctor => Box::new(doctor::doctor(cx).await?),
        Command::Packer(PackerCommand::Install { version, dir }) => {
            Box::new(packer::install(version.as_deref(), dir).await?)
        }
        Command::Packer(PackerCommand::Version) => Box::new(packer::version().await?),
        Command::Completions { shell } => Box::new(steps::completions(shell)),
        Command::Man { markdown: false } => Box::new(steps::man()?),
        Command::Man { markdown: true } => Box::new(steps::command_reference()),
        Command::Steps => Box::new(steps::steps(cx)?),
        Command::Render { steps } => Box::new(render::render(cx, &steps).await?),
        Command::Validate { steps } => Box::new(render::validate(cx, &steps).await?),
        Command::Plan { steps, rebuild, detailed_exitcode } => {
            Box::new(build::plan(cx, &steps, &Rebuild::from_arg(rebuild), detailed_exitcode).await?)
        }
        Command::Build {
            steps,
            rebuild,
            dry_run,
            packer_debug,
            force,
            delete_snapshots,
            jobs,
            retries,
            retry_delay,
            keep_failed,
            verbose,
            events: _,
            events_packer: _,
        } => {
            let options = BuildOptions {
                dry_run,
                packer_debug,
                force,
                delete_snapshots,
                jobs: usize::from(jobs),
                retries,
                retry_delay: std::time::Duration::from_secs(retry_delay),
                keep_failed,
            };
            Box::new(build::build(cx, &steps, &Rebuild::from_arg(rebuild), options, verbose).await?)
        }
        Command::Recover => Box::new(build::recover(cx).await?),
        Command::Test { steps, verbose } => Box::new(build::test(cx, &steps, verbose).await?),
        Command::Lifecycle(LifecycleCommand::Plan | LifecycleCommand::Apply { dry_run: true, .. }) => {
            Box::new(lifecycle::lifecycle_plan(cx).await?)
        }
        Command::Lifecycle(LifecycleCommand::Apply { yes, dry_run: false }) => {
            Box::new(lifecycle::lifecycle_apply(cx, yes).await?)
        }
        Command::Images(ImagesCommand::List { step, limit }) => Box::new(images::list(cx, step, limit).await?),
        Command::Images(ImagesCommand::Show { step }) => Box::new(images::show(cx, &step).await?),
        Command::Images(ImagesCommand::Usage { step, ami }) => {
            Box::new(images::usage(cx, step.as_deref(), ami.as_deref()).await?)
        }
        Command::Images(ImagesCommand::FromInstance { step, instance_id, no_wait, timeout }) => {
            let wait = (!no_wait).then(|| std::time::Duration::from_secs(timeout));
            Box::new(images::from_instance(cx, &step, &instance_id, wait).await?)
        }
        Command::Images(ImagesCommand::Delete { step, delete_snapshots, dry_run, force: _, reason, yes }) => {
            let request =
                paw_core::change::DeleteRequest { delete_snapshots, forced_because: reason, retire_in_use: false };
            Box::new(images::delete(cx, &step, request, dry_run, yes).await?)
        }
        Command::Images(ImagesCommand::Lineage { step, descendants }) => {
            Box::new(lifecycle::lineage(cx, &step, descendants).await?)
        }
        Command::Images(ImagesCommand::Prune { keep, older_than, delete_snapshots, dry_run, yes }) => {
            let options = PruneOptions { keep, older_than_days: older_than, delete_snapshots, dry_run };
            Box::new(lifecycle::prune(cx, options, yes).await?)
        }
        Command::Images(ImagesCommand::Revoke { step, reason, cascade, force, dry_run, yes }) => {
            Box::new(lifecycle::revoke(cx, &step, &reason, cascade, force, dry_run, yes).await?)
        }
        Command::Images(ImagesCommand::Restore { step, dry_run }) => {
            Box::new(lifecycle::restore(cx, &step, dry_run).await?)
        }
        Command::Images(ImagesCommand::Copy { step, to_regions, dry_run }) => {
            regions::copy(cx, &step, &to_regions, dry_run).await?
        }
        Command::Images(ImagesCommand::Share { step, accounts, org_arns, remove, dry_run }) => {
            let request = ShareRequest { accounts, organization_arns: org_arns, remove };
            regions::share(cx, &step, request, dry_run).await?
        }
        Command::Status => Box::new(lifecycle::status(cx).await?),
        Command::Report { html, all_workflows } => Box::new(report::report(cx, html, all_workflows).await?),
        Command::Channel(ChannelCommand::Set { channel: name, step, ssm_parameter, reason, force, dry_run }) => {
            let change = Change { by: String::new(), reason, force };
            channel::set(cx, &name, &step, ssm_parameter, change, dry_run).await?
        }
        Command::Channel(ChannelCommand::List) => Box::new(channel::list(cx).await?),
        Command::Channel(ChannelCommand::History { channel: name, step }) => {
            Box::new(channel::history(cx, &name, &step).await?)
        }
        Command::Channel(ChannelCommand::Rollback { channel: name, step, reason, dry_run }) => {
            channel::rollback(cx, &name, &step, reason, dry_run).await?
        }
        Command::Resolve { step, channel: name, region, account } => {
            Box::new(channel::resolve(cx, &step, name, region.as_deref(), account.as_deref()).await?)
        }
        Command::Distribute { step, dry_run } => regions::distribute(cx, &step, dry_run).await?,
        Command::BaseAmi(BaseAmiCommand::Update { dry_run }) => {
            Box::new(lifecycle::update_base_ami(cx, dry_run).await?)
        }
        Command::BaseAmi(BaseAmiCommand::Find { name, owner, arch }) => {
            Box::new(images::find_base_ami(cx, name, owner, arch).await?)
        }
        Command::Catalog(CatalogCommand::Migrate { from, to, steps, dry_run }) => {
            Box::new(catalog::migrate(cx, &from, &to, steps, dry_run).await?)
        }
        Command::Catalog(CatalogCommand::Adopt { workflow_ids }) => Box::new(catalog::adopt(cx, workflow_ids).await?),
        Command::Notify(NotifyCommand::Test) => Box::new(notify::test(cx).await?),
        Command::Verify { step, ami, no_chain, public_key } => {
            Box::new(verify::verify(cx, step.as_deref(), ami.as_deref(), !no_chain, public_key.as_deref()).await?)
        }
        Command::Images(ImagesCommand::Provenance { step }) => Box::new(verify::provenance(cx, &step).await?),
        Command::Images(ImagesCommand::Sbom { step }) => Box::new(verify::sbom(cx, &step).await?),
        Command::Images(ImagesCommand::SbomDiff { step, first, second }) => {
            Box::new(verify::sbom_diff(cx, &step, &first, &second).await?)
        }
    })
}
