"""ASHA, as raykd.tuning.tuner.asha builds it for every raykd search, never stops a PID/SID trial during its internal
stages: progress is counted in classification epochs, and internal stages report cls_epoch = 0."""

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from raykd.tuning import tuner


def make_scheduler():
    scheduler = tuner.asha(max_epochs=3, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties("dev_accuracy", "max")
    return scheduler


def report(scheduler, trial, epoch, cls_epoch, accuracy):
    return scheduler.on_trial_result(None, trial, {"cls_epoch": cls_epoch, "epoch": epoch, "dev_accuracy": accuracy})


def test_internal_stages_are_never_judged_but_classification_epochs_are():
    scheduler = make_scheduler()
    kd_trials = [Trial("run", stub=True) for _ in range(4)]
    sid = Trial("run", stub=True)
    for t in [*kd_trials, sid]:
        scheduler.on_trial_add(None, t)
    for t, acc in zip(kd_trials, [0.70, 0.68, 0.66, 0.64]):  # strong kd trials fill the first rung
        report(scheduler, t, 1, 1, acc)
    # three internal-stage epochs with an untrained classifier: far below the rung, yet not stopped
    for epoch in (1, 2, 3):
        assert report(scheduler, sid, epoch, 0, 0.47) == TrialScheduler.CONTINUE
    # its first classification epoch is judged like anyone's: still weak, so ASHA stops it now
    assert report(scheduler, sid, 4, 1, 0.47) == TrialScheduler.STOP


def test_the_banded_scheduler_of_a_pareto_search_does_not_judge_internal_stages_either():
    """--objective pareto's ASHA inside latency bands (tuner.banded_asha) counts classification epochs too."""
    scheduler = tuner.banded_asha({"L3-H384-F1536": 0, "L1-H384-F768": 0}, max_epochs=3, grace_period=1)
    scheduler.set_search_properties("dev_accuracy", "max")
    kd_trials = [Trial("run", stub=True, config={"student_shape": "L3-H384-F1536"}) for _ in range(4)]
    sid = Trial("run", stub=True, config={"student_shape": "L1-H384-F768"})
    for t in [*kd_trials, sid]:
        scheduler.on_trial_add(None, t)
    for t, acc in zip(kd_trials, [0.70, 0.68, 0.66, 0.64]):
        report(scheduler, t, 1, 1, acc)
    for epoch in (1, 2, 3):
        assert report(scheduler, sid, epoch, 0, 0.47) == TrialScheduler.CONTINUE
    assert report(scheduler, sid, 4, 1, 0.47) == TrialScheduler.STOP
