"""The :class:`Teacher`: batched, seeded, optionally watermarked generation from a loaded model.

One caller at a time: ``generate`` holds the model's lock for the whole call, so a gateway may
call it from a worker thread. Prompts are sorted by length into batches (less padding), left
padded, generated, and returned in the caller's order.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any, Callable, Sequence

from distillscope.errors import InputDataError
from distillscope.progress import Progress, ensure_progress
from distillscope.teacher.generation import (Generation, SamplingParams, TokenStep, make_recorder, make_stop_criteria,
                                             make_token_hook)
from distillscope.teacher.model import LoadedModel
from distillscope.teacher.prompting import encode_prompt

logger = logging.getLogger(__name__)


class Teacher:
    """Generates answers with ``loaded``; applies ``watermark`` (a watermark scheme) when asked to."""

    def __init__(self, loaded: LoadedModel, watermark: Any | None = None) -> None:
        self.loaded = loaded
        self.watermark = watermark

    @property
    def watermark_key_id(self) -> str | None:
        if self.watermark is None:
            return None
        return self.watermark.config().get("key_id")

    def encode_prompt(self, prompt: str | Sequence[dict[str, str]], *, chat: bool | None = None) -> list[int]:
        """Token ids of one prompt: the chat template, or the fallback (see :mod:`.prompting`)."""
        return encode_prompt(self.loaded.tokenizer, prompt, chat=chat)

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        for value in (self.loaded.model.generation_config.eos_token_id, self.loaded.tokenizer.eos_token_id):
            if value is not None:
                ids.update(value if isinstance(value, (list, tuple)) else [value])
        return sorted(ids)

    def _generation_config(self, params: SamplingParams):
        from transformers import GenerationConfig

        sample = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens, do_sample=sample,
            temperature=params.temperature if sample else None, top_k=params.top_k if sample else None,
            top_p=params.top_p if sample else None, pad_token_id=self.loaded.pad_token_id,
            eos_token_id=self._eos_ids(), bos_token_id=self.loaded.tokenizer.bos_token_id,
            return_dict_in_generate=True, use_cache=True)

    def _check_context(self, encoded: list[list[int]], params: SamplingParams) -> None:
        limit = getattr(self.loaded.model.config, "max_position_embeddings", None)
        for i, ids in enumerate(encoded):
            if limit and len(ids) + params.max_new_tokens > limit:
                raise InputDataError(f"prompt {i + 1} has {len(ids)} tokens; with max_new_tokens="
                                     f"{params.max_new_tokens} it exceeds the model's context of {limit}",
                                     hint="shorten the prompt or lower max_new_tokens")

    def _watermark_processor(self, params: SamplingParams):
        """The scheme's processor, told the sampling parameters (the Gumbel scheme samples itself).

        Greedy requests (temperature 0) pass temperature 1: a keyed sampler has no greedy mode.
        """
        temperature = params.temperature if params.temperature > 0 else 1.0
        return self.watermark.processor(temperature=temperature, top_k=params.top_k, top_p=params.top_p)

    def generate(self, prompts: Sequence[str | Sequence[dict[str, str]]], params: SamplingParams | None = None, *,
                 watermark: bool = True, batch_size: int = 8, chat: bool | None = None,
                 progress: Progress | None = None,
                 on_token: Callable[[TokenStep], bool | None] | None = None,
                 processors: Sequence[Any] = ()) -> list[Generation]:
        """Answer every prompt. ``watermark`` applies the teacher's scheme (if it has one).

        ``processors`` (``transformers`` logits processors, e.g. the countermeasures' samplers) run
        on the raw scores before the watermark, so the watermark still applies to what they leave.

        ``on_token`` (optional) is called in this thread with each :class:`TokenStep` as soon as it
        is sampled, for streaming; returning ``False`` stops that prompt's answer (finish_reason
        "cancelled"). It never changes what is sampled: the same seed gives the same answer with or
        without it.
        """
        import torch

        params = params or SamplingParams()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputDataError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if isinstance(prompts, str):
            prompts = [prompts]  # type: ignore[list-item]
        encoded = [encode_prompt(self.loaded.tokenizer, p, chat=chat, where=f"prompt {i + 1}")
                   for i, p in enumerate(prompts)]
        self._check_context(encoded, params)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[Generation | None] = [None] * len(encoded)
        use_wm = watermark and self.watermark is not None
        t0, n_tokens = time.perf_counter(), 0
        seeded = params.seed is not None
        devices = [self.loaded.model.device] if self.loaded.model.device.type == "cuda" else []
        with self.loaded.lock, (torch.random.fork_rng(devices=devices) if seeded else nullcontext()), \
                ensure_progress(progress).task("generating", total=len(encoded)) as task:
            if seeded:
                torch.manual_seed(params.seed)
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = self._generate_batch([encoded[i] for i in idx], params, use_wm, idx, on_token, processors)
                for i, gen in zip(idx, batch):
                    results[i] = gen
                    n_tokens += gen.n_tokens
                task.advance(len(idx))
        seconds = time.perf_counter() - t0
        logger.info("generated %d tokens for %d prompts in %.1fs (%.1f tokens/s, watermark=%s)", n_tokens,
                    len(encoded), seconds, n_tokens / max(seconds, 1e-9), use_wm)
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], params: SamplingParams, use_wm: bool,
                        indices: Sequence[int] = (), on_token: Callable[[TokenStep], bool | None] | None = None,
                        extra: Sequence[Any] = ()) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        width = max(len(ids) for ids in batch)
        pad = self.loaded.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], dtype=torch.long)
        recorder = make_recorder(params.logprobs)
        processors = [*extra, *([self._watermark_processor(params)] if use_wm else [])]
        stop = make_stop_criteria(self.loaded.tokenizer, params.stop, width) if params.stop else None
        hook = None
        if on_token is not None:
            hook = make_token_hook(on_token, list(indices), self._eos_ids(), recorder, inner=stop)
        stopping = StoppingCriteriaList([hook] if hook is not None else [stop] if stop is not None else [])
        device = self.loaded.model.device
        with torch.inference_mode():
            out = self.loaded.model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device),
                generation_config=self._generation_config(params),
                logits_processor=LogitsProcessorList([*processors, recorder]), stopping_criteria=stopping)
        new = out.sequences[:, width:].cpu()
        recorder.finish(out.sequences[:, -1])
        chosen = torch.stack(recorder.chosen, dim=1) if recorder.chosen else torch.zeros((len(batch), 0))
        out = [self._finish(batch[row], new[row].tolist(), chosen[row].tolist(),
                            [(ids[row].tolist(), vals[row].tolist()) for ids, vals in recorder.top], params)
               for row in range(len(batch))]
        if hook is not None:
            out = [self._cancelled(gen, hook.emitted[row]) if hook.cancelled[row] else gen
                   for row, gen in enumerate(out)]
        return out

    def _cancelled(self, gen: Generation, n_tokens: int) -> Generation:
        """An answer whose ``on_token`` callback stopped it: the tokens it was handed, "cancelled"."""
        tokens = gen.token_ids[:n_tokens]
        return Generation(prompt_ids=gen.prompt_ids, token_ids=tokens,
                          text=self.loaded.tokenizer.decode(list(tokens), skip_special_tokens=True),
                          finish_reason="cancelled", token_logprobs=gen.token_logprobs[:n_tokens],
                          top_logprobs=gen.top_logprobs[:n_tokens])

    def _finish(self, prompt_ids: list[int], tokens: list[int], logprobs: list[float],
                top: list[tuple[list[int], list[float]]], params: SamplingParams) -> Generation:
        """Cut at end-of-sequence or the first stop string; decode; attach logprobs."""
        eos = set(self._eos_ids())
        end = next((i for i, t in enumerate(tokens) if t in eos), None)
        finish = "stop" if end is not None else "length"
        tokens = tokens[:end] if end is not None else tokens
        decode = self.loaded.tokenizer.decode
        text = decode(tokens, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in params.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            keep = 0
            while keep < len(tokens) and len(decode(tokens[:keep + 1], skip_special_tokens=True)) <= cut:
                keep += 1
            tokens = tokens[:keep]
        n = len(tokens)
        top_pairs = tuple(tuple(zip(ids, vals)) for ids, vals in top[:n]) if params.logprobs else ()
        return Generation(prompt_ids=tuple(prompt_ids), token_ids=tuple(tokens), text=text, finish_reason=finish,
                          token_logprobs=tuple(float(x) for x in logprobs[:n]), top_logprobs=top_pairs)
