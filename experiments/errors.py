"""Which library exceptions are the user's to fix (bad input, missing steps), as opposed
to bugs: the CLI prints them as one clear message and the demo names the failed step."""
from __future__ import annotations


class DemoStepError(Exception):
    """A step of the demo pipeline failed; the message names the step's command."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types whose message tells the user what to fix or run."""
    from experiments.conditions import UnknownConditionError, UnknownKindError
    from experiments.demo_data import DemoDataError
    from experiments.designs import DesignError
    from experiments.distance_sources import FeatureAccessError
    from experiments.distractors import DistractorError
    from experiments.evaluate import ShardError
    from experiments.experiment_file import ExperimentFileError
    from experiments.features.weights import WeightsError
    from experiments.ingest import IngestError
    from experiments.manifest import ManifestError
    from experiments.store import StoreError
    from experiments.subsets import SubsetError

    return (DemoDataError, DemoStepError, DesignError, DistractorError, ExperimentFileError,
            FeatureAccessError, IngestError, ManifestError, ShardError, StoreError, SubsetError,
            UnknownConditionError, UnknownKindError, WeightsError)
