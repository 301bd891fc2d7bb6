"""Targets, their runs and how they execute (locally or as SLURM jobs), and the tables with paired intervals.

    runs = plan("table2", profile="cpu")         # list of Run(arm, dataset, seed, config)
    rows = execute(runs, target="table2")          # trains what is missing; one row per run
    write_csv(rows, "results/table2.csv")
    delta = paired_delta(rows, "top1_final", "sar+no-skip")   # paired SAR - baseline delta + 95% CI

A notebook calls `prepare(target, globals())` (its parameters, checked) and `Study.execute()`.
"""

from .execute import execute, wait_for_other_process
from .jaccard import measure_jaccard, with_jaccard
from .params import NOTEBOOK_PARAMETERS, ParameterError, Study, check_parameters, normalize_parameters, prepare
from .plan import plan
from .runs import ARMS, PAPER_LAMBDA, Run
from .tables import git_commit, paired_delta, seeds_for_margin, t_half_width, write_csv
from .rows import COLUMNS, check_rows, make_row
from .robustness import measure_robustness, robustness_of
from .targets import CALIBRATION_CRITERION, HEADLINE, STUDIES, TARGETS

__all__ = ["ARMS", "CALIBRATION_CRITERION", "HEADLINE", "COLUMNS", "NOTEBOOK_PARAMETERS", "PAPER_LAMBDA", "STUDIES", "TARGETS",
           "ParameterError", "Run", "Study", "check_parameters", "check_rows", "make_row", "execute", "measure_robustness", "robustness_of", "git_commit", "measure_jaccard",
           "normalize_parameters", "paired_delta", "plan", "prepare", "seeds_for_margin", "t_half_width", "wait_for_other_process",
           "with_jaccard", "write_csv"]
