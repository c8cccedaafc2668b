"""``gnnu-study``: events in, a GNN-vs-CNN result out (README, issue 16).

One command runs simulation (or reads hit files or a graph dataset), builds the graph dataset,
trains and evaluates every (model, training size, seed) and compares the models on the same test
events, then writes ``RESULTS.md`` and ``results.json``. One concept a module:

- :mod:`gnnu.study.config`: the study config (validated YAML, ``configs/studies/``) and ``scale``;
- :mod:`gnnu.study.plan`: what the study will do, checked before any work (sizes, models, data);
- :mod:`gnnu.study.runner`: the stages in order, refusal, resume and progress lines;
- :mod:`gnnu.study.results`: metrics with intervals, results.json, RESULTS.md and the plots.
"""

from .config import StudyConfig, load_study_config
from .runner import StudyOptions, StudyResult, run_study

__all__ = ["StudyConfig", "StudyOptions", "StudyResult", "load_study_config", "run_study"]
