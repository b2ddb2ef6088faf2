"""The pipeline's and the studies' commands: teacher, train and plot (``ibcheck.pipeline``),
study and report (``ibcheck.study``). Each ``cmd_*`` takes the parsed arguments and returns the
exit status; the modules they use are imported when the command runs, not when ``--help`` is
parsed."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ibcheck.cli.args import check_output, positive_fraction, resolve_device, seed_arg
from ibcheck.interface import InputError

TRAIN_HELP = """\
Train the paper's experiment into --out: a teacher VAE (into OUT/teacher, unless
--teacher names a finished one), the student's data (the teacher's mean
reconstructions of the training images, original labels), and a VIB student.
After every epoch, metrics.jsonl gets one record: I(X;Z) by vib, teacher_elbo,
teacher_iw, empirical (exact for the training set), nce and loo, with standard
errors; I(Y;Z) by barber_agakov (the student's own classifier) and empirical;
"population": a bracket on the I(X;Z) of the teacher's model population (fresh
z_v ~ N(0, I) through the teacher: the annealed bounds teacher_rais below and
teacher_ais above, with their paired width, T, K, n and acceptance rate), which has
no ln N ceiling, on epoch 0 and log-spaced epochs (track.population.epochs); how
each q was trained ("q_fit"); accuracies; the encoder's mean
log-determinant; the mean gradient norm; seconds training and estimating. With
"track": {"epochs": n} (the study presets), the estimates run after n log-spaced
epochs only, and the other epochs get a light record (losses, gradient norm,
log-determinant). --seed seeds the student, its tracking and its label
draws; the data and the teacher come from the teacher's seed (--teacher T, or
--seed for a teacher trained here). --resume continues a killed run with no
lost or repeated epoch. Exit status: 0 done, 2 bad input (a one-line message, and
nothing is written), 3 training diverged (the run folder keeps the records before
it, and its status.json says so)."""

STUDY_HELP = """\
Run a grid of training runs (cells) on Ray, each an ordinary, resumable run
folder under --out, with study.json and summary.csv beside them. SPEC is a JSON
file, or a built-in grid (study-smoke, study-small, study-bracket, study-paper): a
preset, an optional "base" in the --config format, and a "grid" mapping dotted config keys
(student.beta, student.optimizer, student.std_shift, zero_info, seed, ...) to
lists; the cells are their Cartesian product (a list of grids: the union). One
teacher is trained per distinct data and teacher setting and shared by the cells.
Without --address a local Ray starts inside this process; with it, the study
runs on that cluster (every node must see --out at the same path). Re-running
the same command skips finished cells, resumes killed ones and retries failed
ones; a different spec in the same folder is refused. Exit status: 0 every cell
finished, 1 a cell failed or diverged (its error is in summary.csv), 2 bad input."""

REPORT_HELP = """\
Turn a study folder into answers: one figure per Figure 3-7 of the paper (PNG
with its CSV), the paper's claims judged over seeds on the paper's measure
min(vib, teacher_elbo) and on the exact I(X;Z) of the training set
(claims.json, claims.md: reproduced / not reproduced / inconclusive, with the
statistic, its 95% confidence interval and the seeds; Holm's correction over all
verdicts), and report.md with the grid, the seeds, the cost and the findings."""

def _progress_bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=quiet, file=sys.stderr, leave=False)


def cmd_teacher(args: argparse.Namespace) -> int:
    from ibcheck.pipeline import configure, data, sizes, teacher_run

    device = resolve_device(args.device)
    config = configure.teacher_config(configure.load_config_file(args.config), seed=args.seed, data=args.data,
                                      data_dir=args.data_dir, epochs=args.epochs, preset=args.preset)
    check_output("--out", args.out, folder=True)
    run = teacher_run.teacher_folder(config, Path(args.out), args.resume)
    train, test = data.load_images(config.data, config.teacher.seed)
    sizes.check_teacher(config.teacher, len(train.labels), device)
    with _progress_bar(config.teacher.epochs, "teacher", args.quiet) as bar:
        def progress(epoch: int, record: dict) -> None:
            bar.n = epoch
            bar.set_postfix(test_neg_elbo=f"{record['test_neg_elbo']:.1f}")

        teacher_run.fit_teacher(config, run, train.as_float(), test.as_float(), device, progress)
    print(f"teacher: {args.out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ibcheck.estimators.registry import BARBER_AGAKOV, EMPIRICAL, VIB
    from ibcheck.pipeline import configure, sizes, training

    device = resolve_device(args.device)
    config = configure.train_config(args.preset, configure.load_config_file(args.config), seed=args.seed,
                                    data=args.data, data_dir=args.data_dir, zero_info=args.zero_info,
                                    teacher=args.teacher)
    check_output("--out", args.out, folder=True)
    sizes.check_epochs(config)  # before the bar, whose length is the epochs
    teacher_epochs = 0 if config.teacher_run else config.teacher.epochs
    with _progress_bar(teacher_epochs + config.epochs, "train", args.quiet) as bar:
        def progress(stage: str, done: int, total: int, record: dict) -> None:
            bar.n = done if stage == "teacher" else teacher_epochs + done
            if stage == "measuring":
                bar.set_postfix_str(f"estimating the information at epoch {done}", refresh=False)
            if stage == "student" and "I_XZ" in record:
                bar.set_postfix(I_XZ_emp=f"{record['I_XZ'][EMPIRICAL.name]['value']:.2f}",
                                acc=f"{record['accuracy']['test']:.3f}", refresh=False)
            bar.refresh()

        records = training.train(config, args.out, device, args.resume, progress,
                                 notice=lambda line: bar.write(line, file=sys.stderr))
    last = records[-1]
    xz, yz = last["I_XZ"], last["I_YZ"]
    print(f"{args.out}: epoch {last['epoch']}, I(X;Z) {EMPIRICAL.name} {xz[EMPIRICAL.name]['value']:.3f}, "
          f"{VIB.name} {xz[VIB.name]['value']:.3f}, I(Y;Z) {BARBER_AGAKOV.name} {yz[BARBER_AGAKOV.name]['value']:.3f}, "
          f"test accuracy {last['accuracy']['test']:.4f}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from ibcheck.pipeline import plots

    out = args.out or str(Path(args.runs[0]) / "plots")
    check_output("--out", out, folder=True)
    for path in plots.write_plots(args.runs, out):
        print(path)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ibcheck.study import execute, spec

    study = spec.load(args.spec)
    check_output("--out", args.out, folder=True)
    if args.cpus_per_cell < 1:
        raise InputError(f"--cpus-per-cell must be >= 1, got {args.cpus_per_cell}")
    if not 0.0 < args.gpus_per_cell <= 1.0:
        raise InputError(f"--gpus-per-cell must be in (0, 1], got {args.gpus_per_cell}")
    _check_cells(study, args)
    # the teachers' epochs first, then the cells': both advance the one bar
    total = sum(c.config.epochs for c in study.cells) + sum(t.teacher.epochs for t in study.teachers.values())
    with tqdm(total=total, desc="study", unit="epoch", disable=args.quiet, file=sys.stderr, leave=False) as bar:
        def progress(state: dict) -> None:
            bar.n = state["epochs"] + state["teacher_epochs"]
            teachers = state.get("teachers")
            bar.set_postfix_str(f"training {teachers} teacher{'s' if teachers > 1 else ''} before the cells" if teachers
                                else f"cells {state['done']}/{len(study.cells)} done, {state['running']} queued or "
                                     f"running, {state['failed']} failed", refresh=False)
            bar.refresh()

        def connecting(address: str) -> None:
            if not args.quiet:
                print(f"ibcheck: connecting to the Ray cluster at {address}", file=sys.stderr)

        outcomes = execute.run_study(study, Path(args.out), args.address,
                                     execute.Resources(args.cpus_per_cell, args.gpus_per_cell), progress, connecting)
    failed = {name: o for name, o in outcomes.items() if o["status"] != execute.STATUS_FINISHED}
    for name, outcome in failed.items():
        print(f"ibcheck: cell {name} {outcome['status']}: {outcome['error']}", file=sys.stderr)
    print(f"{args.out}: {len(study.cells) - len(failed)} of {len(study.cells)} cells finished "
          f"({len(outcomes)} run now); summary: {Path(args.out) / 'summary.csv'}")
    return 1 if failed else 0


def _check_cells(study, args: argparse.Namespace) -> None:
    """Refuse a cell whose sizes cannot fit before any teacher trains, and say how long a long local
    study will take (``pipeline.sizes``; the data are not read yet, so their size is the expected one)."""
    import os

    import torch

    from ibcheck.pipeline import sizes

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for cell in study.cells:
        try:
            sizes.check_train(cell.config, sizes.expected_points(cell.config), device)
        except InputError as err:
            raise InputError(f"{args.spec}: cell {cell.name}: {err}") from None
    if args.address is None and device == "cpu":
        notice = sizes.study_announcement([c.config for c in study.cells], [t.teacher for t in study.teachers.values()],
                                          os.cpu_count() or 1)
        if notice is not None:
            print(notice, file=sys.stderr)


def cmd_report_old_name(args: argparse.Namespace) -> int:
    print("ibcheck: warning: `ibcheck report` is now `ibcheck study-report`; the old name goes in a later release",
          file=sys.stderr)
    return cmd_report(args)


def cmd_report(args: argparse.Namespace) -> int:
    from ibcheck.study import report as study_report

    check_output("--out", args.out, folder=True)
    for path in study_report.write(Path(args.study), Path(args.out), alpha=args.alpha):
        print(path)
    return 0


def add_study_commands(sub) -> None:
    s = sub.add_parser("study", help="run a grid of training runs on Ray", description=STUDY_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("spec", metavar="SPEC", help="study spec (JSON) or a built-in grid: study-smoke, study-small, "
                                                "study-bracket, study-paper")
    s.add_argument("--out", required=True, metavar="DIR", help="study folder, e.g. runs/NAME")
    s.add_argument("--address", default=None, metavar="ADDR",
                   help="an existing Ray cluster (e.g. HEAD:6379); default: a local Ray inside this process")
    s.add_argument("--cpus-per-cell", type=int, default=1, metavar="N",
                   help="CPU threads each cell declares and uses (default: %(default)s)")
    s.add_argument("--gpus-per-cell", type=float, default=0.25, metavar="F",
                   help="GPU fraction each cell declares where the cluster has GPUs (default: %(default)s)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_study)
    for name in ("study-report", "report"):  # "report", its name before 0.2, is not listed in --help
        shown = {"help": "figures and claim verdicts of a study"} if name == "study-report" else {}
        r = sub.add_parser(name, description=REPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                           **shown)
        r.add_argument("study", metavar="STUDY", help="a study folder written by ibcheck study")
        r.add_argument("--out", required=True, metavar="DIR", help="report folder")
        r.add_argument("--alpha", type=positive_fraction, default=0.05, metavar="A",
                       help="family-wise error rate of all verdicts together (Holm; default: %(default)g)")
        r.set_defaults(func=cmd_report if name == "study-report" else cmd_report_old_name)


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, choices=("mnist10k", "fashion"),
                   help="built-in MNIST subset (default) or Debian's Fashion-MNIST")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="a folder of MNIST-format IDX files instead")
    p.add_argument("--config", metavar="FILE",
                   help="JSON overriding settings, by section (data, teacher, student, track; see the README)")
    p.add_argument("--seed", type=seed_arg, default=None, metavar="S",
                   help="root of the seed tree of every random draw of this command (default 0)")
    p.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--resume", action="store_true", help="continue the run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# config.PRESETS's names, written out: importing config here would import torch to parse the arguments
PRESET_NAMES = ("paper", "smoke", "study-small", "study-paper")


def add_experiment_commands(sub) -> None:
    t = sub.add_parser("teacher", help="train the teacher VAE alone",
                       description="Train the teacher VAE (784-400-20, Bernoulli pixels, Adam 1e-3, batch 128, "
                                   "100 epochs) into --out, with per-epoch train and test negative ELBO. --seed "
                                   "seeds its data split, weights and shuffling; students of any seed can then "
                                   "share it (ibcheck train --teacher).")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder (refused if another run is there)")
    t.add_argument("--preset", default="paper", choices=PRESET_NAMES,
                   help="the data and teacher settings of train's preset of that name, so that `train --preset "
                        "P --teacher DIR` takes this run (default: paper, 100 epochs)")
    t.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's; the paper's 100)")
    _data_options(t)
    t.set_defaults(func=cmd_teacher)
    r = sub.add_parser("train", help="train and track a VIB student", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--out", required=True, metavar="DIR", help="run folder, e.g. runs/NAME")
    r.add_argument("--preset", default="paper", choices=PRESET_NAMES,
                   help="paper: the paper's settings; smoke: an 8-second check; study-small, study-paper: "
                        "the studies' settings, estimating at log-spaced epochs (default: paper)")
    r.add_argument("--teacher", default=None, metavar="DIR",
                   help="a finished `ibcheck teacher` run to use: its data and teacher settings apply")
    r.add_argument("--zero-info", default=None, choices=("redraw", "fixed"),
                   help="labels independent of the images: redrawn every epoch, or one fixed relabelling")
    _data_options(r)
    r.set_defaults(func=cmd_train)
    p = sub.add_parser("plot", help="plot training runs", description="Information plane, estimators over epochs "
                       "(95% bands, ln N), log-determinant and gradient norm; PNG and plot_data.csv.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by ibcheck train")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: FIRST_RUN/plots)")
    p.set_defaults(func=cmd_plot)
