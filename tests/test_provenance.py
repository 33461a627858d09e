"""What produced a number travels with it: records name the machine, tuned files the precision
and machine of their search, a run under another precision says so, and a worker refuses a job
keyed for another device class or thread count (issue 28)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mubench.config import ExecutionConfig, ExperimentConfig
from mubench.data import LoadOptions
from mubench.device import machine
from mubench.errors import MubenchError
from mubench.planner import original_job
from mubench.runner import check_compute
from mubench.tune_output import produced_by
from mubench.tuned import SHIPPED_DIR, describe_tuned, read_tuned

CPU = torch.device("cpu")


def test_machine_names_the_cpu_its_isa_flags_and_the_threads():
    info = machine(CPU, threads=3)
    assert info["device"] == "cpu" and info["threads"] == 3 and info["cpu"]
    assert {type(info[k]) for k in ("amx", "avx512_bf16", "avx512f", "avx2")} == {bool}


def test_a_tuned_file_says_what_produced_it():
    config = ExperimentConfig(execution=ExecutionConfig(threads_per_worker=2))
    produced = produced_by(config, "digits")
    assert produced["precision"] == "fp32"  # digits' auto, on every device
    assert produced["device"] == "cpu" and produced["threads"] == 2


def test_a_run_under_another_precision_than_its_tuned_file_prints_one_line(tmp_path):
    shipped = (SHIPPED_DIR / "digits.toml").read_text()
    assert 'produced = {precision = "fp32"' in shipped  # re-tuned in fp32, as digits runs train
    path = tmp_path / "bf16.toml"  # the same file as if it had been searched in bf16
    path.write_text(shipped.replace('produced = {precision = "fp32"', 'produced = {precision = "bf16"'))
    digits = read_tuned(path)
    assert digits.produced["precision"] == "bf16"
    fp32 = describe_tuned(ExperimentConfig(precision="fp32", tuned=str(path)))
    bf16 = describe_tuned(ExperimentConfig(precision="bf16", tuned=str(path)))
    assert len(describe_tuned(ExperimentConfig())) == 1  # the shipped file matches a default run
    assert len(fp32) == 2 and "selected from bf16 runs" in fp32[1] and "this run trains in fp32" in fp32[1]
    assert len(bf16) == 1  # same precision and device class: nothing to say
    assert dataclasses.replace(digits, produced={}).mismatch("fp32", "cpu") is None  # a file that does not say


def test_a_worker_refuses_a_job_keyed_for_another_thread_count(monkeypatch):
    job = original_job("digits", LoadOptions(), "small_cnn", {"epochs": 1}, "fp32", 0, CPU, 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    check_compute(job, CPU)  # matches: nothing raised
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    with pytest.raises(MubenchError, match="keyed for cpu with 2 torch threads but this worker computes with cpu with 1"):
        check_compute(job, CPU)
