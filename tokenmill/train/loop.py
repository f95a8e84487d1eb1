"""The training loop: `tokenmill train JOB.yaml [--resume] [--mix NEW_MIX.yaml] [--max-steps N]`.

Per optimizer step: G sequences (all ranks) in micro-batches; loss = CE + λ·MTP CE + aux, each CE a mean over the
global batch's target tokens (so gradient accumulation and DDP give the same gradient as one big batch); clip;
spike check on the global CE; AdamW step; router-bias update from the step's summed expert load; metrics;
provenance rows (per-row and per-document loss from the same forward pass); a checkpoint every `checkpoint.every`.
Resuming restores weights, optimizer, RNG, spike window and the step — the data order is a function of the step —
so on CPU a resumed run's losses equal an uninterrupted run's bit for bit (tests/test_train_resume.py).
Measured: the `tiny` preset at seq 64, batch 8 runs ~12 steps/s with one CPU thread on a loaded 2-core machine
(tests/test_train_learning.py: 200 steps in 17 s).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tokenmill.config import ConfigError
from tokenmill.io import atomic_write_json
from tokenmill.train import checkpoint as ckpt_io
from tokenmill.train import provenance as prov
from tokenmill.train import setup
from tokenmill.train.config import TrainJob, load_job
from tokenmill.train.data import MixtureMicroBatches, RankLayout, micro_batches, step_batches
from tokenmill.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    full_state_dicts,
    init_distributed,
    load_optimizer_state,
    shutdown,
    unwrap,
    wrap_model,
)
from tokenmill.train.metrics import MetricsLog, SpikeDetector
from tokenmill.train.mixture import DataExhausted
from tokenmill.train.optim import build_optimizer, keep_implementation, set_lr


def train_from_spec(job_path: str, resume: bool = False, mix: str | None = None,
                    max_steps: int | None = None) -> dict:
    """Train (or resume) the job; returns a summary (final step, last loss, why it stopped)."""
    import os

    job = load_job(job_path, int(os.environ.get("WORLD_SIZE", "1")))
    info = init_distributed(job.device)
    threads = torch.get_num_threads()
    if job.cpu_threads and info.device.type == "cpu":
        torch.set_num_threads(job.cpu_threads)
    try:
        trainer = Trainer(job, info, str(job_path), resume=resume, mix=mix)
        return trainer.run(min(max_steps or job.max_steps, job.max_steps))
    finally:
        torch.set_num_threads(threads)  # in-process callers (tests, notebooks) get their setting back
        shutdown(info)


class Trainer:
    def __init__(self, job: TrainJob, info: DistInfo, where: str, resume: bool, mix: str | None) -> None:
        self.job, self.info, self.where = job, info, where
        self.run_dir = Path(job.run_dir)
        ckpt = ckpt_io.latest_good_checkpoint(self.run_dir) if resume else None
        if not resume and ckpt_io.list_checkpoints(self.run_dir):
            raise ConfigError(f"{where}: {self.run_dir} already holds checkpoints; pass --resume to continue, "
                              "or set run_dir to a new folder")
        if resume and ckpt is None and ckpt_io.list_checkpoints(self.run_dir):
            raise ConfigError(f"{where}: every checkpoint in {self.run_dir / 'checkpoints'} is corrupt (see above); "
                              "nothing to resume from")
        if resume and ckpt is None and mix is not None:
            raise ConfigError(f"{where}: --mix needs a checkpoint to resume from; none found in {self.run_dir}")
        self.step = int(ckpt["meta"]["step"]) if ckpt else 0
        stored = ckpt["meta"]["mixture"] if ckpt else None
        self.sources, self.stages, self.from_mix = setup.resolve_mixture(job, stored, self.step, mix, where)
        self.packed = setup.open_sources(self.sources, job)
        self.fps = {n: setup.source_fingerprint(p, job) for n, p in self.packed.items()}
        self.schedule = setup.build_schedule(self.packed, self.stages, job)
        if stored is not None:
            setup.check_past(self.schedule, self.fps, stored, self.step, where)
        self.args = setup.model_args_for(job, self.packed)
        self.tokenizer = setup.tokenizer_path(job, self.packed)
        self._build_model(ckpt)
        self.layout = RankLayout(job.batch.global_batch_size, job.batch.micro_batch_size, info.rank,
                                 info.world_size)
        self.log = MetricsLog(self.run_dir, self.step, job.tensorboard) if info.is_main else None
        self.spikes = SpikeDetector(job.spikes.window, job.spikes.min_history, job.spikes.z_threshold,
                                    ckpt["trainer"]["spike_history"].tolist() if ckpt else None)
        if info.is_main:
            prov.rewind(self.run_dir, self.step)
        barrier(info)
        self.prov = prov.ProvenanceWriter(self.run_dir, info.rank, self.schedule.sources, self.packed) \
            if job.provenance.enabled else None
        self.epochs = {n: 0 for n in self.schedule.sources}
        if ckpt and info.is_main:
            print(f"tokenmill: resumed from {ckpt['folder']} at step {self.step}", flush=True)

    def _build_model(self, ckpt: dict | None) -> None:
        from tokenmill.train.model import Transformer

        torch.manual_seed(self.job.data.seed)  # every rank builds identical initial weights
        model = Transformer(self.args)
        if ckpt:
            model.load_state_dict(ckpt["model"])
        self.model = model.to(self.info.device)
        self.wrapped = wrap_model(self.model, self.info, self.job.distributed.strategy)
        self.optimizer = build_optimizer(self.model, self.job.optim)
        if ckpt:
            layout = ckpt["meta"].get("optimizer_layout", "index")
            want = "name" if self.info.enabled and self.job.distributed.strategy == "fsdp" else "index"
            if layout != want:
                raise ConfigError(f"{self.where}: checkpoint {ckpt['folder']} holds optimizer state keyed by "
                                  f"parameter {layout} (written under another distributed.strategy); resume "
                                  "with the strategy and world size it was written with")
            load_optimizer_state(self.model, self.optimizer, ckpt["optimizer"], self.info,
                                 self.job.distributed.strategy)
            keep_implementation(self.optimizer)
            torch.set_rng_state(ckpt["trainer"]["rng_cpu"])
            if torch.cuda.is_available() and len(ckpt["trainer"].get("rng_cuda", [])) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(ckpt["trainer"]["rng_cuda"])

    # -- one step -----------------------------------------------------------------------------------------------
    def _autocast(self):
        if self.info.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()  # bf16 autocast is slower than fp32 on these CPUs (ENVIRONMENT.md)

    def _micro_loss(self, mb: dict, n_global: torch.Tensor, sync: bool) -> dict:
        dev = self.info.device
        tokens_BL = mb["tokens_BL"].to(dev, non_blocking=True)
        T = tokens_BL.shape[1] - 1
        pos_T = torch.arange(T, device=dev)
        valid_BT = (pos_T[None, :] + 1 < mb["n_valid_B"].to(dev)[:, None]).float()  # target t = token t+1
        if hasattr(self.wrapped, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter on the last micro-batch only
            self.wrapped.set_requires_gradient_sync(sync)
        ctx = contextlib.nullcontext() if sync or not hasattr(self.wrapped, "no_sync") else self.wrapped.no_sync()
        with ctx:
            with self._autocast():
                out = self.wrapped(tokens_BL[:, :T])
            ce_BT = F.cross_entropy(out.logits_BTV.float().flatten(0, 1), tokens_BL[:, 1:].flatten(),
                                    reduction="none").view(-1, T)
            ce_sum = (ce_BT * valid_BT).sum()
            mtp_sum = ce_sum.new_zeros(())
            if out.mtp_logits_BTV is not None:  # position t predicts token t+2
                mtp_valid = valid_BT[:, 1:]
                mtp_BT = F.cross_entropy(out.mtp_logits_BTV[:, :-1].float().flatten(0, 1),
                                         tokens_BL[:, 2:].flatten(), reduction="none").view(-1, T - 1)
                mtp_sum = (mtp_BT * mtp_valid).sum()
            W, M = self.info.world_size, self.layout.micro_per_step
            n_ce, n_mtp = n_global[0].clamp(min=1), n_global[1].clamp(min=1)
            loss = W * (ce_sum / n_ce + self.args.mtp_loss_weight * mtp_sum / n_mtp) + out.aux_loss / M
            loss.backward()
        return {"ce_BT": ce_BT.detach(), "valid_BT": valid_BT, "ce_sum": ce_sum.detach(),
                "mtp_sum": mtp_sum.detach(), "aux": out.aux_loss.detach(), "load_LE": out.expert_load_LE}

    def train_step(self, step: int, micro: list[dict]) -> dict:
        t0 = time.perf_counter()
        self.model.train()
        lr = set_lr(self.optimizer, step, self.job.optim, self.job.max_steps)
        n_tok = torch.zeros(2, dtype=torch.float64)
        for mb in micro:
            n = mb["n_valid_B"].clamp(min=1) - 1
            n_tok += torch.stack([n.sum(), (n - 1).clamp(min=0).sum()]).double()
        n_global = all_reduce_sum(n_tok.to(self.info.device), self.info).float()
        parts = [self._micro_loss(mb, n_global, sync=i == len(micro) - 1) for i, mb in enumerate(micro)]
        sums = torch.stack([torch.stack([p["ce_sum"], p["mtp_sum"], p["aux"]]) for p in parts]).sum(0).double()
        sums = all_reduce_sum(sums, self.info)
        load_LE = all_reduce_sum(torch.stack([p["load_LE"] for p in parts]).sum(0).float(), self.info)
        ce = float(sums[0] / n_global[0].clamp(min=1))
        mtp = float(sums[1] / n_global[1].clamp(min=1))
        aux = float(sums[2]) / (len(micro) * self.info.world_size)
        clip = self.job.optim.grad_clip or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        spike = self.spikes.check(ce) if self.job.spikes.policy else None
        apply = spike is None or self.job.spikes.policy == "record"
        if apply:
            self.optimizer.step()
            if load_LE.numel():
                unwrap(self.model).update_router_biases(load_LE)
        self.optimizer.zero_grad(set_to_none=True)
        self._record_provenance(step, micro, parts, skipped=not apply)
        elapsed = time.perf_counter() - t0
        return {"step": step, "loss": ce + self.args.mtp_loss_weight * mtp + aux, "ce": ce, "mtp_ce": mtp,
                "aux": aux, "grad_norm": grad_norm, "lr": lr, "tokens": int(n_global[0]),
                "tokens_per_s": float(n_global[0]) / elapsed, **self._balance(load_LE),
                "skipped": not apply, "spike": spike}

    def _balance(self, load_LE: torch.Tensor) -> dict:
        if not load_LE.numel():
            return {}
        biases = [m.gate.bias for m in unwrap(self.model).moe_layers()]
        return {"load_max_over_min": (load_LE.max(1).values / load_LE.min(1).values.clamp(min=1)).tolist(),
                "router_bias_min": [float(b.min()) for b in biases],
                "router_bias_max": [float(b.max()) for b in biases]}

    def _record_provenance(self, step: int, micro: list[dict], parts: list[dict], skipped: bool) -> None:
        for mb, p in zip(micro, parts, strict=False):
            for s, e in zip(mb["source_B"].tolist(), mb["epoch_B"].tolist(), strict=False):
                name = self.schedule.sources[s]
                if e > self.epochs[name]:
                    self.epochs[name] = e
                    if self.info.is_main:
                        print(f"tokenmill: source {name!r} wrapped: epoch {e} begins at step {step}", flush=True)
            if self.prov is None:
                continue
            valid = p["valid_BT"]
            row_loss = ((p["ce_BT"] * valid).sum(1) / valid.sum(1).clamp(min=1)).cpu().numpy()
            docs = prov.doc_losses(p["ce_BT"], valid, mb["spans"])
            self.prov.add(step, mb, self.layout.row_in_step(mb["k"]), row_loss, docs, skipped)

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self, stop_step: int) -> dict:
        job = self.job
        data = MixtureMicroBatches(self.packed, self.schedule, self.layout, with_docs=self.prov is not None,
                                   max_steps=stop_step)
        batches = micro_batches(data, self.step, stop_step, job.data.num_workers, job.data.prefetch,
                                pin_memory=self.info.device.type == "cuda")
        self._write_run_json()
        reason, last = "max_steps", {}
        try:
            for micro in step_batches(batches, self.layout.micro_per_step):
                step = self.step
                last = self.train_step(step, micro)
                self.step = step + 1
                spike = last.pop("spike")
                self._log(last, spike)
                if spike is not None and job.spikes.policy == "stop":
                    reason = f"loss spike at step {step} (z={spike['z']:.1f}); spikes.policy=stop"
                    self.step = step  # the spike batch was not applied: a resume retries from here
                    break
                if self.step % job.checkpoint.every == 0 or (self.prov and self.step % job.provenance.flush_every
                                                               == 0):
                    self._flush_provenance()
                if self.step % job.checkpoint.every == 0:
                    self.save()
        except DataExhausted as err:
            reason = f"data exhausted: {err}"
        self._flush_provenance()
        if self.step % job.checkpoint.every or reason != "max_steps":
            self.save()
        if self.log is not None:
            self.log.close()
            loss = f"; loss {last['loss']:.4f}" if last else " (no step left to run)"
            print(f"tokenmill: stopped at step {self.step} ({reason}){loss}", flush=True)
        return {"step": self.step, "reason": reason, "last": last, "epochs": dict(self.epochs)}

    def _log(self, rec: dict, spike: dict | None) -> None:
        if self.log is None:
            return
        rec = {**rec, "epochs": dict(self.epochs)}
        self.log.log(rec)
        if spike is not None:
            action = {"skip": "skipped", "stop": "stopped", "record": "applied"}[self.job.spikes.policy]
            self.log.spike({"step": rec["step"], **spike, "action": action})
            print(f"tokenmill: loss spike at step {rec['step']}: ce {spike['loss']:.3f} vs mean "
                  f"{spike['mean'] or float('nan'):.3f} (z={spike['z']:.1f}); {action}", flush=True)
        if rec["step"] % self.job.log_every == 0:
            print(f"step {rec['step']:6d}  loss {rec['loss']:.4f}  ce {rec['ce']:.4f}  lr {rec['lr']:.2e}  "
                  f"gnorm {rec['grad_norm']:.2f}  {rec['tokens_per_s']:.0f} tok/s", flush=True)

    def _flush_provenance(self) -> None:
        if self.prov is not None:
            self.prov.flush()

    def save(self) -> None:
        barrier(self.info)
        strategy = self.job.distributed.strategy
        model_state, optim_state = full_state_dicts(self.model, self.optimizer, self.info, strategy)
        if self.info.is_main:
            past = self.schedule.past(self.step, self.fps)
            meta = {"model_args": setup.args_dict(self.args), "tokenizer": self.tokenizer, "job": self.job.name,
                    "world_size": self.info.world_size,
                    "optimizer_layout": "name" if self.info.enabled and strategy == "fsdp" else "index",
                    "mixture": {"sources": self.sources, "stages": self.stages, "from_mix": self.from_mix,
                                "past": past,
                                "fingerprint": self.schedule.past_fingerprint(self.step, self.fps)}}
            trainer_state = {"step": self.step, "rng_cpu": torch.get_rng_state(),
                             "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                             "spike_history": torch.tensor(self.spikes.state(), dtype=torch.float64)}
            ckpt_io.save_checkpoint(self.run_dir, self.step, model_state, optim_state, trainer_state, meta,
                                    self.job.checkpoint.keep_last)
        barrier(self.info)

    def _write_run_json(self) -> None:
        if self.info.is_main:
            atomic_write_json(self.run_dir / "run.json", {
                "job": json.loads(self.job.model_dump_json()), "sources": self.sources, "stages": self.stages,
                "world_size": self.info.world_size, "model_args": setup.args_dict(self.args),
                "tokenizer": self.tokenizer, "provenance_dir": prov.PROVENANCE_DIR})
