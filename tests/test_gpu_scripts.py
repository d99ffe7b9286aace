"""scripts/bench_gpu.py and scripts/gpu_job_record.py without a GPU: the code paths the device run uses."""

import json

import pytest

from medseg_nas.trial_store import TrialStore
from script_loader import load_script


def test_bench_gpu_smoke_on_cpu(tmp_path):
    bench = load_script("bench_gpu")
    out = tmp_path / "gpu.json"
    assert bench.main(["--device", "cpu", "--tiny", "--work-dir", str(tmp_path / "w"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["results"]) == {"amp", "fp32"} and doc["facts"]["device"] == "cpu"
    amp, fp32 = doc["results"]["amp"]["per_trial"], doc["results"]["fp32"]["per_trial"]
    assert [t["genome"] for t in amp] == [t["genome"] for t in fp32] and len(amp) == 2  # the same networks
    assert all(t["status"] == "done" and t["val_dice"] is not None and t["peak_mem_mb"] > 0 for t in amp + fp32)
    # on CPU both are fp32 (AMP is CUDA-only), so the same seeds give the same Dice
    assert doc["val_dice_amp_minus_fp32"] == [0.0, 0.0]


def test_bench_gpu_refuses_cuda_without_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(SystemExit, match="no GPU"):
        load_script("bench_gpu").main(["--out", str(tmp_path / "x.json")])


def _bar(key, done, total, mmss, rate):
    return f"trial {key}:  50%|#####     | {done}/{total} [{mmss}<00:03, {rate}it/s, epoch=1/9, loss=0.2]"


def test_gpu_job_record_reads_a_cut_short_job(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with TrialStore(run / "trials.sqlite") as store:
        for i, (secs, wait) in enumerate([(10.0, 2.0), (6.0, 3.0)]):
            tid = store.start(f"k{i}", "{}", seed=0)
            store.finish(tid, "done", f1=0.4, f2=12.0, seconds=secs, n_params=1000,
                         result={"val_dice": 0.8, "peak_mem_mb": 60.0, "device": "cuda",
                                 "timing": {"train_s": secs - 1, "val_s": 1.0, "data_wait_s": wait, "step_ms": 30.0,
                                            "data_wait_fraction": wait / (secs - 1)}})
    (run / "search.log").write_text("2026-12-04T06:53:20 search start\n2026-12-04T06:55:57 search stopped (budget)\n")
    # the pick's retrain keeps its search key (k0): only bars after the retrain header count
    log = "\r".join([_bar("k0", 100, 200, "00:05", 20.0), "\n=== retrain\n", _bar("k0", 50, 4500, "00:02", 25.0),
                     _bar("k0", 4436, 4500, "03:12", 23.1)])
    (tmp_path / "job.log").write_text(log)
    out = tmp_path / "rec.json"
    assert load_script("gpu_job_record").main([str(run), str(tmp_path / "job.log"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["search_s"] == 157.0 and doc["finished"] is False
    assert doc["trial_totals"] == {"train_s": 14.0, "val_s": 2.0, "data_wait_s": 5.0, "seconds": 16.0}
    assert doc["retrain"] == {"steps_done": 4436, "steps_budget": 4500, "seconds": 192, "steps_per_s": 23.1,
                              "finished": False}


def test_gpu_job_record_without_retrain(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    TrialStore(run / "trials.sqlite").close()
    (run / "search.log").write_text("2026-12-04T06:53:20 search start\n")
    (tmp_path / "job.log").write_text(_bar("k0", 100, 200, "00:05", 20.0))
    out = tmp_path / "rec.json"
    assert load_script("gpu_job_record").main([str(run), str(tmp_path / "job.log"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["retrain"] is None and doc["search_s"] is None and doc["trials"] == []
