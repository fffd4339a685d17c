"""Several processes with torchrun (gloo, on this machine): same result as one process.

Each torchrun here starts real processes, so the runs are tiny and every wait has a timeout:
a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from charnext.config import TrainConfig
from charnext.errors import DeviceError
from charnext.storage import checkpoint as ckpt
from charnext.text.prepare import prepare
from charnext.training import distributed
from charnext.training.runs import new_run, resume_run
from charnext.training.trainer import Trainer

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not sys.platform.startswith("linux"),
    reason="needs torch.distributed and Linux (/proc, to find a process to kill)",
)

MODEL = dict(hidden_size=16, num_layers=1, embedding_size=8)


TRAIN = dict(seq_len=16, batch_size=4, val_fraction=0.2, eval_every=3, lr=0.01, precision="fp32", seed=5)
# Some verse, repeated: 3,000 characters, a fifth of them held out for validation.
TEXT = (
    "The woods are lovely, dark and deep,\nBut I have promises to keep,\nAnd miles to go before I sleep.\n"
) * 31
RUN_TIMEOUT = 180  # seconds for one torchrun of a few steps, generous for a loaded 2-core CI machine


def cli_args(**train) -> list[str]:
    """Command-line options for the tiny model and `train` options."""
    options = {**MODEL, **TRAIN, **train}
    return [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]


def torchrun(*args: str, cwd: Path, nproc: int = 2, extra_env: dict | None = None) -> subprocess.Popen:
    """`torchrun --standalone --nproc-per-node=N -m charnext train ARGS` (a free port each time);
    each process's stdout and stderr go to files under cwd/logs (torchrun's own stay on its pipes)."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "--monitor-interval=0.1", f"--log-dir={cwd / 'logs'}", "--redirects=3",
        "-m", "charnext", "train", *args,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80", "NO_COLOR": "1", **(extra_env or {})}
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
    """Wait for a run (killing it at the timeout); (exit code, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish within {timeout}s:\n{err[-3000:]}")
    return proc.returncode, out, err


def rank_output(cwd: Path, rank: int, stream: str = "stdout") -> str:
    """What process `rank` printed on `stream` (torchrun --redirects puts it in a file)."""
    files = sorted((cwd / "logs").rglob(f"attempt_0/{rank}/{stream}.log"), key=lambda p: p.stat().st_mtime)
    assert files, f"no {stream} log for rank {rank} under {cwd / 'logs'}"
    return files[-1].read_text()


def all_logs(cwd: Path) -> str:
    """Every process's output, to show when a run failed."""
    return "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((cwd / "logs").rglob("*.log")))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load(path).model.state_dict()


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=2e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")


def one_process(text, out: Path, steps: int, resume: Path | None = None) -> Trainer:
    """A single-process run in this process, on the same settings as the torchrun ones."""
    if resume is not None:
        trainer = resume_run(resume, text, out=out, steps=steps)
    else:
        # planned as `charnext train` plans it with the same options (e.g. its warm-up)
        given = {*MODEL, *TRAIN, "steps"}
        trainer = new_run(text, None, TrainConfig(steps=steps, **TRAIN), out, given=given, **MODEL)
    list(trainer.run())
    return trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A text, its prepared folder, a 2-process run of 6 steps and the same run in 1 process."""
    poem = TEXT
    root = tmp_path_factory.mktemp("ddp")
    (root / "poem.txt").write_text(poem, encoding="utf-8")
    prepare(root / "poem.txt", root / "prepared", chunk_bytes=500)
    proc = torchrun("--file=poem.txt", "--steps=6", "--out=two.pt", "--json", *cli_args(), cwd=root)
    code, out, err = finish(proc)
    assert code == 0, err[-3000:] + all_logs(root)
    one_process(poem, root / "one.pt", 6)
    return root, poem, out, err


def test_two_processes_end_with_the_weights_of_one(runs):
    root, poem, out, err = runs
    assert_same_weights(root / "one.pt", root / "two.pt")
    one, two = ckpt.load_raw(root / "one.pt"), ckpt.load_raw(root / "two.pt")
    assert one["step"] == two["step"] == 6 and one["vocab"] == two["vocab"]
    # the logged losses are the global batch's, as one process sees it
    torch.testing.assert_close(torch.tensor(two["history"]["loss"]), torch.tensor(one["history"]["loss"]))
    torch.testing.assert_close(
        torch.tensor(two["history"]["val_loss"]),
        torch.tensor(one["history"]["val_loss"]),
        atol=1e-5,
        rtol=1e-5,
    )
    assert two["summary"]["batch_size"] == 4  # the global batch, 2 rows a process
    assert json.loads(rank_output(root, 0))["steps"] == 6  # --json: one object on stdout


def test_only_rank_zero_prints(runs):
    root, *_ = runs
    assert "training done" in rank_output(root, 0, "stderr")  # with --json the tables go to stderr
    assert rank_output(root, 1) == rank_output(root, 1, "stderr") == ""


def test_a_two_process_checkpoint_resumes_in_one_process(runs):
    root, poem, *_ = runs
    one_process(poem, root / "one10.pt", 10, resume=root / "one.pt")
    one_process(poem, root / "two_then_one.pt", 10, resume=root / "two.pt")
    assert ckpt.load_raw(root / "two_then_one.pt")["step"] == 10
    assert_same_weights(root / "one10.pt", root / "two_then_one.pt")


def test_a_one_process_checkpoint_resumes_in_two_on_prepared_data(runs):
    root, poem, *_ = runs
    if not (root / "one10.pt").exists():
        one_process(poem, root / "one10.pt", 10, resume=root / "one.pt")
    proc = torchrun(
        "--data=prepared",
        "--resume=one.pt",
        "--steps=10",
        "--out=one_then_two.pt",
        f"--eval-every={TRAIN['eval_every']}",
        cwd=root,
    )
    code, out, err = finish(proc)
    assert code == 0, err[-3000:] + all_logs(root)
    assert ckpt.load_raw(root / "one_then_two.pt")["step"] == 10
    assert_same_weights(root / "one10.pt", root / "one_then_two.pt")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_end_with_the_weights_of_one_process(runs):
    """Two torchrun "nodes" of one process each on this machine (c10d rendezvous at 127.0.0.1),
    the same global batch of 4 windows as the single process: the same weights."""
    root, *_ = runs
    port = free_port()
    procs = []
    for node in (0, 1):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}",
            "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
            f"--rdzv-id=charnext-test-{port}", "--monitor-interval=0.1",
            "-m", "charnext", "train", "--file=poem.txt", "--steps=6", "--out=nodes.pt", "--json",
            *cli_args(),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80", "NO_COLOR": "1"}
        procs.append(subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))  # fmt: skip
    results = [finish(p) for p in procs]
    for code, _, err in results:
        assert code == 0, err[-3000:]
    summaries = [json.loads(out) for _, out, _ in results if out.strip()]
    assert len(summaries) == 1 and summaries[0]["batch_size"] == 4  # rank 0 alone prints, global batch
    two = ckpt.load_raw(root / "nodes.pt")
    assert two["provenance"]["processes"] == 2 and two["step"] == 6
    assert_same_weights(root / "one.pt", root / "nodes.pt")


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the worker of rank `rank` among processes whose environment holds `marker`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in env and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def test_a_rank_that_dies_ends_the_run_and_the_checkpoint_resumes(runs, tmp_path):
    _, poem, *_ = runs
    (tmp_path / "poem.txt").write_text(poem, encoding="utf-8")
    marker = f"CHARNEXT_TEST_RUN={uuid.uuid4()}"
    name, value = marker.split("=")
    proc = torchrun(
        "--file=poem.txt", "--steps=100000", "--out=run.pt", "--dist-timeout=60s", *cli_args(eval_every=2),
        cwd=tmp_path, extra_env={name: value},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (tmp_path / "run.pt").exists():  # the latest state, saved at each validation
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.1)
        pid = _rank_pid(marker, 1)
        assert pid is not None, "rank 1 not found"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        code, out, err = finish(proc, timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code != 0
    assert time.monotonic() - killed < 90
    assert "rank      : 1" in err and "SIGKILL" in err, err[-3000:]  # torchrun's report names it
    # process 0 either noticed (one line: "error: process 0 of 2 lost the others ...") or was
    # stopped by torchrun first; never a traceback
    assert "Traceback" not in rank_output(tmp_path, 0, "stderr")
    # the last checkpoint is whole, and a single process continues from it
    saved = ckpt.load_raw(tmp_path / "run.pt")
    trainer = resume_run(tmp_path / "run.pt", poem, out=tmp_path / "after.pt", steps=saved["step"] + 2)
    list(trainer.run())
    assert trainer.result.steps == saved["step"] + 2


def test_environment_and_devices(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() == distributed.Processes(0, 1, 0)  # no torchrun: nothing to join
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.from_env() == distributed.Processes(3, 4, 1)
    assert not distributed.from_env().main
    with pytest.raises(DeviceError, match="not on MPS"):
        distributed.process_device("mps", world=2)
    assert distributed.process_device("cpu", world=2) == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DeviceError, match="WORLD_SIZE"):
        distributed.from_env()
