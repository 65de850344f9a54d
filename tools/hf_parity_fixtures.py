#!/usr/bin/env python3
"""Reference fixtures for the engine's parity with Hugging Face transformers (issue 7).

Creates tiny random ``Qwen2ForCausalLM`` / ``LlamaForCausalLM`` checkpoints from the explicit configs in
``MODELS``, saves each with ``save_pretrained(safe_serialization=True)`` to ``<out>/<name>/`` and writes
``<out>/<name>/fixture.json`` with what transformers computes for fixed, LEFT-padded token batches:

* ``last_logits[b]``: logits at the last (real) position of row b;
* ``resid_last[l][b]``: the residual stream at the last position of row b, in the engine's ``resid[l]``
  indexing (see "Residual index mapping" below), for l = 0 .. L;
* ``mlp_zeroed[i].last_logits[b]``: last-position logits with layer ``mlp_zeroed[i].layer``'s MLP output
  replaced by zeros at every position (a forward hook on ``model.model.layers[l].mlp``); the engine's
  equivalent is ``{hook: "blocks.l.hook_mlp_out", op: "scale", value: 0}``;
* ``greedy.tokens[b]``: the greedy continuation of row b (20 new tokens at most), cut after the first EOS
  (kept, as the engine's ``generate`` keeps it). It is computed twice: by
  ``generate(do_sample=False, max_new_tokens=20)`` and by a loop of plain forward passes (no cache,
  explicit cumsum position ids, argmax); the two must agree (``greedy.source`` says they did;
  ``greedy.generate_tokens`` keeps generate()'s). ``greedy.margins[b][s]`` is the gap between the best
  and the second-best logit at step s (a near-tie there makes the exact comparison fragile).

Inputs follow what ``generate`` does with left padding: an explicit ``attention_mask`` (0 on padding) and
``position_ids = clamp(cumsum(attention_mask) - 1, min=0)`` (generate itself fills padding positions with
1 instead of 0; padding positions are masked out, so real positions get the same ids either way: 0 at
each row's first real token, as in the engine).

Residual index mapping (engine ``captures.resid[l][row][k]``, l = 0 .. L, L = num_hidden_layers):

* ``resid[l]`` for l < L = ``blocks.l.hook_resid_pre`` = the input of decoder layer l
  = transformers ``output_hidden_states=True`` ``hidden_states[l]`` (``hidden_states[0]`` is the
  embedding output);
* ``resid[L]`` = the last ``hook_resid_post`` = the output of the last decoder layer BEFORE the final
  RMSNorm. transformers' ``hidden_states[L]`` is the output AFTER ``model.model.norm``, so it is NOT used:
  ``resid[L]`` is taken from a forward pre-hook on ``model.model.norm`` (its input).

The recorded values come from forward pre-hooks (decoder layer l's input, the final norm's input). They
are cross-checked against ``output_hidden_states`` while the fixture is written: ``hidden_states[l]``
must equal the input of decoder layer l, and ``hidden_states[L]`` must equal ``model.model.norm(resid[L])``;
the outcome is written to ``hidden_states_note`` (and a warning printed when they disagree).

Self-checks that stop the script (a fixture would otherwise test something else than it claims): the
config kept the sizes, ``q_proj`` implies the configured head_dim, the rotary ``inv_freq`` follows
rope_theta (and shows the llama3 scaling), embeddings are tied exactly when configured, and the saved
folder holds config.json and an F32 model.safetensors (with lm_head.weight when untied).

Determinism: CPU only (CUDA is hidden before torch is imported), fp32, ``torch.use_deterministic_algorithms
(True)``, one thread, eager attention, ``torch.manual_seed(seed)`` per model before its weights are drawn.
The random initialisation is the script's own (transformers' default std 0.02 would give near-uniform
logits that any engine matches within 1e-4): embedding std 1 (untied) or hidden^-1/4 (tied), ``lm_head``
hidden^-1/2, other matrices fan_in^-1/2, RMSNorm weights 1 + N(0, 0.1), biases N(0, 0.1) (the scheme of
lib/model/random_checkpoint.ts).

Usage (needs torch and transformers; numpy is not needed)::

    python3 tools/hf_parity_fixtures.py --out tests/fixtures/hf_parity

The engine side is tests/model/hf_parity_test.ts. See tools/README.md for running this on the device
machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import platform
import shutil
import sys
from typing import Any

FORMAT = "hf-parity-fixture/1"
MAX_NEW_TOKENS = 20
# Fixture values are float32 rounded to this many significant digits.
SIGNIFICANT_DIGITS = 7
# A greedy step whose best and second-best logits are closer than this is reported as a near-tie.
NEAR_TIE = 1e-3

PAD_TOKEN_ID = 0
BOS_TOKEN_ID = 1
EOS_TOKEN_ID = 2
FIRST_ORDINARY_TOKEN = 3

# Explicit configs. Every key is passed to the transformers config class as given; keys the engine reads
# are listed in lib/model/config.ts. Sizes are deliberately not powers of two.
MODELS: list[dict[str, Any]] = [
    {
        "name": "qwen2_gqa_tied",
        "arch": "Qwen2ForCausalLM",
        "seed": 7001,
        "description": "Qwen2, GQA 6 query / 2 kv heads, tied embeddings, q/k/v biases, hidden 48",
        "config": {
            "vocab_size": 101,
            "hidden_size": 48,
            "intermediate_size": 72,
            "num_hidden_layers": 3,
            "num_attention_heads": 6,
            "num_key_value_heads": 2,
            "hidden_act": "silu",
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": True,
            "use_sliding_window": False,
            "attention_dropout": 0.0,
        },
    },
    {
        "name": "qwen2_mha_untied",
        "arch": "Qwen2ForCausalLM",
        "seed": 7002,
        "description": "Qwen2, 5 heads = 5 kv heads, untied lm_head, rope_theta 1e6, hidden 40",
        "config": {
            "vocab_size": 89,
            "hidden_size": 40,
            "intermediate_size": 56,
            "num_hidden_layers": 2,
            "num_attention_heads": 5,
            "num_key_value_heads": 5,
            "hidden_act": "silu",
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "tie_word_embeddings": False,
            "use_sliding_window": False,
            "attention_dropout": 0.0,
        },
    },
    {
        "name": "llama3_rope_head_dim_12",
        "arch": "LlamaForCausalLM",
        "seed": 7003,
        "description": "Llama, GQA 4/2, head_dim 12 != hidden/heads (10), llama3 rope scaling, untied",
        "config": {
            "vocab_size": 97,
            "hidden_size": 40,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 12,
            "hidden_act": "silu",
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16,
            },
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
            "attention_dropout": 0.0,
        },
    },
    {
        "name": "llama_tied_biases",
        "arch": "LlamaForCausalLM",
        "seed": 7004,
        "description": "Llama, GQA 3/1, tied embeddings, attention_bias and mlp_bias, hidden 36",
        "config": {
            "vocab_size": 113,
            "hidden_size": 36,
            "intermediate_size": 60,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "num_key_value_heads": 1,
            "hidden_act": "silu",
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": True,
            "attention_bias": True,
            "mlp_bias": True,
            "attention_dropout": 0.0,
        },
    },
]

# Token batches: row lengths per batch (rows of one batch are left-padded to the longest). The token ids
# are a fixed function of (batch, row, index) and the vocabulary size, avoiding pad/bos/eos.
BATCHES: list[dict[str, Any]] = [
    {"name": "left_padded", "lengths": [9, 3, 6, 1]},
    {"name": "single_row", "lengths": [12]},
]


def batch_rows(batch_index: int, lengths: list[int], vocab_size: int) -> list[list[int]]:
    span = vocab_size - FIRST_ORDINARY_TOKEN
    rows = []
    for r, n in enumerate(lengths):
        rows.append([
            FIRST_ORDINARY_TOKEN + (7 + 13 * i + 31 * r + 57 * batch_index + (i * i) % 11) % span
            for i in range(n)
        ])
    return rows


def r7(x: float) -> float:
    if not math.isfinite(x):
        raise SystemExit(f"non-finite value {x!r} in a fixture")
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def rounded(values: Any) -> Any:
    """Nested lists of floats (from Tensor.tolist()) rounded to SIGNIFICANT_DIGITS."""
    if isinstance(values, list):
        return [rounded(v) for v in values]
    return r7(float(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder, e.g. tests/fixtures/hf_parity")
    parser.add_argument("--only", action="append", default=[], help="write only this model (repeatable)")
    args = parser.parse_args()

    # CPU only, before torch is imported.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        import torch
        import transformers
    except ImportError as e:
        raise SystemExit(f"{e}: this script needs torch and transformers (see tools/README.md)")

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    try:
        transformers.logging.set_verbosity_error()
    except AttributeError:
        pass

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(f"versions: {versions}", file=sys.stderr)

    names = {m["name"] for m in MODELS}
    for n in args.only:
        if n not in names:
            raise SystemExit(f"--only {n}: unknown model; known: {sorted(names)}")
    os.makedirs(args.out, exist_ok=True)
    for spec in MODELS:
        if args.only and spec["name"] not in args.only:
            continue
        write_fixture(spec, args.out, versions, torch, transformers)


def make_config(spec: dict[str, Any], transformers: Any) -> Any:
    cls = {"Qwen2ForCausalLM": transformers.Qwen2Config, "LlamaForCausalLM": transformers.LlamaConfig}[spec["arch"]]
    kwargs = dict(spec["config"])
    kwargs.update(
        pad_token_id=PAD_TOKEN_ID,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        use_cache=True,
    )
    # Keys the config class declares: __init__ parameters (transformers v4) or dataclass fields (v5).
    params = set(inspect.signature(cls.__init__).parameters)
    if dataclasses.is_dataclass(cls):
        params |= {f.name for f in dataclasses.fields(cls)}
    if "rope_theta" not in params and "rope_parameters" in params:
        # transformers v5 takes rope settings as one `rope_parameters` dict.
        rope = dict(kwargs.pop("rope_scaling", None) or {"rope_type": "default"})
        rope["rope_theta"] = kwargs.pop("rope_theta")
        kwargs["rope_parameters"] = rope
    config = cls(**kwargs)
    # Eager attention: the plain softmax(QK^T)V reference (sdpa would agree to ~1e-7 anyway).
    try:
        config._attn_implementation = "eager"
    except Exception as e:  # pragma: no cover - depends on the transformers version
        print(f"warning: could not set eager attention on the config: {e}", file=sys.stderr)
    # The config class must have kept what the engine will read (e.g. head_dim needs transformers >= 4.45).
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size"):
        if getattr(config, key) != spec["config"][key]:
            raise SystemExit(f"{spec['name']}: config.{key} is {getattr(config, key)!r}, expected {spec['config'][key]!r}")
    return config


def reinit_(model: Any, torch: Any) -> None:
    """Draw every parameter from the script's own scheme (see the module docstring)."""
    cfg = model.config
    H = cfg.hidden_size
    tied = bool(cfg.tie_word_embeddings)
    with torch.no_grad():
        # named_parameters() lists a tied lm_head once, under model.embed_tokens.weight.
        for name, p in model.named_parameters():
            if name == "model.embed_tokens.weight":
                p.normal_(0.0, H ** -0.25 if tied else 1.0)
            elif name == "lm_head.weight":
                p.normal_(0.0, H ** -0.5)
            elif name.endswith("norm.weight"):
                p.normal_(1.0, 0.1)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.1)
            elif p.dim() == 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
            else:
                raise SystemExit(f"unexpected parameter {name} of shape {tuple(p.shape)}")


def build_model(spec: dict[str, Any], torch: Any, transformers: Any) -> Any:
    config = make_config(spec, transformers)
    cls = getattr(transformers, spec["arch"])
    torch.manual_seed(spec["seed"])
    model = cls(config)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception as e:  # pragma: no cover
            print(f"warning: set_attn_implementation('eager') failed: {e}", file=sys.stderr)
    model = model.to(device="cpu", dtype=torch.float32)
    model.eval()
    # Weights depend only on the seed, not on how this transformers version initialises modules.
    torch.manual_seed(spec["seed"])
    reinit_(model, torch)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    tied_now = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if tied_now != bool(spec["config"]["tie_word_embeddings"]):
        raise SystemExit(f"{spec['name']}: lm_head tied={tied_now}, config says {spec['config']['tie_word_embeddings']}")
    attn = model.model.layers[0].self_attn
    want_head_dim = spec["config"].get("head_dim", spec["config"]["hidden_size"] // spec["config"]["num_attention_heads"])
    got_head_dim = attn.q_proj.weight.shape[0] // spec["config"]["num_attention_heads"]
    if got_head_dim != want_head_dim:
        raise SystemExit(
            f"{spec['name']}: q_proj implies head_dim {got_head_dim}, expected {want_head_dim} "
            f"(transformers {transformers.__version__} may not support head_dim)"
        )
    check_rope(model, spec, torch)
    return model


def check_rope(model: Any, spec: dict[str, Any], torch: Any) -> None:
    """The rotary frequencies must reflect rope_theta (and the llama3 scaling where configured)."""
    rot = getattr(model.model, "rotary_emb", None)
    inv = getattr(rot, "inv_freq", None)
    if inv is None:
        print(f"warning: {spec['name']}: no model.model.rotary_emb.inv_freq; rope settings not checked", file=sys.stderr)
        return
    c = spec["config"]
    d = c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])
    plain = 1.0 / (c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    inv = inv.float().cpu()
    scaling = c.get("rope_scaling")
    if scaling is None:
        if not torch.allclose(inv, plain, rtol=1e-5, atol=0):
            raise SystemExit(f"{spec['name']}: inv_freq {inv.tolist()} does not follow rope_theta {c['rope_theta']}")
        return
    # llama3: the lowest frequency (wavelength far above original_max / low_freq_factor) is divided by factor.
    want_last = plain[-1] / scaling["factor"]
    if not math.isclose(float(inv[-1]), float(want_last), rel_tol=1e-5) or math.isclose(
        float(inv[-1]), float(plain[-1]), rel_tol=1e-5
    ):
        raise SystemExit(f"{spec['name']}: inv_freq {inv.tolist()} does not show the llama3 rope scaling")


def padded_inputs(rows: list[list[int]], torch: Any) -> tuple[Any, Any, Any]:
    T = max(len(r) for r in rows)
    ids = torch.tensor([[PAD_TOKEN_ID] * (T - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, position_ids


def first_arg(args: tuple, kwargs: dict) -> Any:
    return args[0] if args else kwargs["hidden_states"]


def run_forward(model: Any, ids: Any, mask: Any, pos: Any, torch: Any, zero_mlp_layer: int | None = None) -> dict:
    """One forward pass; returns last-position logits, hidden states and the hooked residuals."""
    layers = model.model.layers
    layer_inputs: list[Any] = [None] * len(layers)
    final: list[Any] = [None]
    handles = []

    def layer_pre_hook(index: int):
        def hook(_module, args, kwargs):
            layer_inputs[index] = first_arg(args, kwargs).detach().clone()
        return hook

    def norm_pre_hook(_module, args, kwargs):
        final[0] = first_arg(args, kwargs).detach().clone()

    def zero_hook(_module, _args, output):
        if isinstance(output, tuple):
            return (torch.zeros_like(output[0]),) + tuple(output[1:])
        return torch.zeros_like(output)

    try:
        for i, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(layer_pre_hook(i), with_kwargs=True))
        handles.append(model.model.norm.register_forward_pre_hook(norm_pre_hook, with_kwargs=True))
        if zero_mlp_layer is not None:
            handles.append(layers[zero_mlp_layer].mlp.register_forward_hook(zero_hook))
        with torch.no_grad():
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=False,
                output_hidden_states=True,
                return_dict=True,
            )
    finally:
        for h in handles:
            h.remove()
    if final[0] is None or any(x is None for x in layer_inputs):
        raise SystemExit("a residual hook did not fire (decoder layers or model.model.norm not called?)")
    return {
        "logits": out.logits[:, -1, :].float(),
        "all_logits": out.logits.float(),
        "hidden_states": out.hidden_states,
        "layer_inputs": layer_inputs,
        "final_prenorm": final[0],
    }


def residuals_last(model: Any, res: dict, torch: Any, name: str) -> tuple[list, str]:
    """resid[l][b] at the last position, l = 0..L, and a note on how output_hidden_states relates to it.

    The recorded values are the hooked inputs of decoder layer l (l < L) and of the final norm (l = L).
    transformers' ``hidden_states[l]`` (l < L) must be the same tensors; where it is not (a transformers
    version with other semantics), the hooked values are kept and the note and a warning say so.
    """
    hs = res["hidden_states"]
    L = len(model.model.layers)
    prenorm = res["final_prenorm"]
    problems = []
    if hs is None or len(hs) != L + 1:
        problems.append(f"output_hidden_states gave {None if hs is None else len(hs)} tensors, not {L + 1}")
    else:
        for l in range(L):
            if not torch.equal(hs[l], res["layer_inputs"][l]):
                diff = (hs[l] - res["layer_inputs"][l]).abs().max().item()
                problems.append(f"hidden_states[{l}] differs from the input of decoder layer {l} by {diff}")
        with torch.no_grad():
            normed = model.model.norm(prenorm)
        if torch.allclose(hs[L], normed, rtol=0, atol=1e-6):
            last = f"hidden_states[{L}] = norm(resid[{L}]) (final norm applied), so resid[{L}] is the norm's input"
        elif torch.equal(hs[L], prenorm):
            last = f"hidden_states[{L}] = resid[{L}] (no final norm applied in this transformers version)"
        else:
            last = f"hidden_states[{L}] is neither the final norm's input nor its output"
            problems.append(last)
    if problems:
        note = "hooked values recorded; output_hidden_states disagreed: " + "; ".join(problems)
        print(f"warning: {name}: {note}", file=sys.stderr)
    else:
        note = f"hidden_states[l] = input of decoder layer l for l < {L} (checked); {last}"
    resid = [x[:, -1, :] for x in res["layer_inputs"]] + [prenorm[:, -1, :]]
    return [rounded(r.float().tolist()) for r in resid], note


def greedy_forward_loop(model: Any, rows: list[list[int]], torch: Any) -> tuple[list[list[int]], list[list[float]]]:
    """Greedy decoding by full forward passes (no cache) over the left-padded batch with explicit cumsum
    position ids, i.e. exactly the engine's semantics. Rows stop after EOS. Returns the tokens and, per
    step, the best minus the second-best logit."""
    tokens: list[list[int]] = [[] for _ in rows]
    margins: list[list[float]] = [[] for _ in rows]
    done = [False] * len(rows)
    for _ in range(MAX_NEW_TOKENS):
        live = [b for b in range(len(rows)) if not done[b]]
        if not live:
            break
        ids, mask, pos = padded_inputs([rows[b] + tokens[b] for b in live], torch)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits[:, -1, :]
        for i, b in enumerate(live):
            row = logits[i].float()
            top2 = torch.topk(row, 2)
            t = int(torch.argmax(row))  # first index among equal maxima, as the engine
            tokens[b].append(t)
            margins[b].append(r7(float(top2.values[0] - top2.values[1])))
            if t == EOS_TOKEN_ID:
                done[b] = True
    return tokens, margins


def greedy_generate(model: Any, ids: Any, mask: Any, n_rows: int, torch: Any) -> list[list[int]]:
    """``generate(do_sample=False, max_new_tokens=20)`` on the left-padded batch, cut after the first EOS."""
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            num_beams=1,
            max_new_tokens=MAX_NEW_TOKENS,
            pad_token_id=PAD_TOKEN_ID,
            eos_token_id=EOS_TOKEN_ID,
            use_cache=True,
        )
    sequences = out if isinstance(out, torch.Tensor) else out.sequences
    new = sequences[:, ids.shape[1]:]
    tokens: list[list[int]] = []
    for b in range(n_rows):
        toks: list[int] = []
        for t in new[b].tolist():
            toks.append(int(t))
            if t == EOS_TOKEN_ID:
                break
        tokens.append(toks)
    return tokens


def greedy(model: Any, ids: Any, mask: Any, rows: list[list[int]], torch: Any, name: str) -> dict:
    """The greedy continuation: generate()'s, checked against a forward-pass loop with explicit cumsum
    position ids (the engine's semantics). They must agree except after a near-tie; if they do not (or
    generate() fails), the forward loop's tokens are recorded and a warning says why."""
    loop_tokens, margins = greedy_forward_loop(model, rows, torch)
    try:
        gen_tokens = greedy_generate(model, ids, mask, len(rows), torch)
        error = None
    except Exception as e:  # a transformers API change must not block the other fixtures
        gen_tokens, error = None, f"{type(e).__name__}: {e}"
    source = "generate() (identical to the forward loop)"
    disagreements = []
    if gen_tokens is None:
        source = f"forward loop (generate() failed: {error})"
    else:
        for b, (g, f) in enumerate(zip(gen_tokens, loop_tokens)):
            if g == f:
                continue
            at = next((s for s in range(min(len(g), len(f))) if g[s] != f[s]), min(len(g), len(f)))
            margin = margins[b][at] if at < len(margins[b]) else None
            tie = margin is not None and margin < NEAR_TIE
            disagreements.append(f"row {b} step {at} (top-2 margin {margin}{', near-tie' if tie else ''})")
            source = "forward loop (generate() parted from it at a near-tie)"
            if not tie:
                source = "forward loop (generate() disagreed beyond a near-tie)"
    if disagreements or gen_tokens is None:
        print(f"warning: {name}: greedy source {source}; generate vs loop: {disagreements}", file=sys.stderr)
    # The loop's tokens (equal to generate()'s when they agree) go with the loop's margins.
    return {
        "max_new_tokens": MAX_NEW_TOKENS,
        "tokens": loop_tokens,
        "margins": margins,
        "source": source,
        "generate_tokens": gen_tokens,
        "generate_vs_forward_loop": disagreements,
    }


def check_saved(out_dir: str, spec: dict[str, Any]) -> None:
    """The folder must hold what the engine loads: config.json and one model.safetensors, F32, with
    lm_head.weight when the embeddings are untied (a tied one may be absent; the engine ignores it)."""
    path = os.path.join(out_dir, "model.safetensors")
    if not os.path.exists(path):
        raise SystemExit(f"{spec['name']}: save_pretrained wrote no model.safetensors: {sorted(os.listdir(out_dir))}")
    if not os.path.exists(os.path.join(out_dir, "config.json")):
        raise SystemExit(f"{spec['name']}: save_pretrained wrote no config.json")
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    names = {k for k in header if k != "__metadata__"}
    dtypes = {header[k]["dtype"] for k in names}
    if dtypes != {"F32"}:
        raise SystemExit(f"{spec['name']}: saved dtypes {dtypes}, expected F32 only")
    if "lm_head.weight" not in names and not spec["config"]["tie_word_embeddings"]:
        raise SystemExit(f"{spec['name']}: untied model saved without lm_head.weight: {sorted(names)}")


def config_json(config: Any) -> Any:
    try:
        return json.loads(config.to_json_string(use_diff=False))
    except Exception:
        return json.loads(json.dumps(config.to_dict(), default=str))


def write_fixture(spec: dict[str, Any], out_root: str, versions: dict, torch: Any, transformers: Any) -> None:
    name = spec["name"]
    model = build_model(spec, torch, transformers)
    L = len(model.model.layers)
    V = spec["config"]["vocab_size"]
    out_dir = os.path.join(out_root, name)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    try:
        model.save_pretrained(out_dir, safe_serialization=True)
    except TypeError:  # a transformers version without the argument (safetensors is then the only format)
        model.save_pretrained(out_dir)
    check_saved(out_dir, spec)

    batches = []
    near_ties = 0
    for bi, batch in enumerate(BATCHES):
        rows = batch_rows(bi, batch["lengths"], V)
        ids, mask, pos = padded_inputs(rows, torch)
        clean = run_forward(model, ids, mask, pos, torch)
        resid, hidden_note = residuals_last(model, clean, torch, name)
        mlp_zeroed = []
        for layer in range(L):
            zeroed = run_forward(model, ids, mask, pos, torch, zero_mlp_layer=layer)
            moved = (zeroed["logits"] - clean["logits"]).abs().max().item()
            if moved < 1e-2:
                print(f"warning: {name}: zeroing MLP {layer} moved the logits by only {moved}", file=sys.stderr)
            mlp_zeroed.append({"layer": layer, "last_logits": rounded(zeroed["logits"].tolist())})
        g = greedy(model, ids, mask, rows, torch, name)
        near_ties += sum(1 for row in g["margins"] for m in row if m < NEAR_TIE)
        batches.append({
            "name": batch["name"],
            "rows": rows,
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "position_ids": pos.tolist(),
            "last_logits": rounded(clean["logits"].tolist()),
            "resid_last": resid,
            "hidden_states_note": hidden_note,
            "mlp_zeroed": mlp_zeroed,
            "greedy": g,
        })
    if near_ties:
        print(
            f"warning: {name}: {near_ties} greedy step(s) with a top-2 logit gap below {NEAR_TIE}; "
            "consider another seed",
            file=sys.stderr,
        )

    fixture = {
        "format": FORMAT,
        "name": name,
        "description": spec["description"],
        "arch": spec["arch"],
        "seed": spec["seed"],
        "versions": versions,
        "generator": "tools/hf_parity_fixtures.py",
        "spec_config": spec["config"],
        "config": config_json(model.config),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "dtype": "float32",
        "device": "cpu",
        "significant_digits": SIGNIFICANT_DIGITS,
        "num_layers": L,
        "hidden_size": spec["config"]["hidden_size"],
        "vocab_size": V,
        "pad_token_id": PAD_TOKEN_ID,
        "eos_token_ids": [EOS_TOKEN_ID],
        "position_ids_rule": "clamp(cumsum(attention_mask) - 1, min=0), left padding",
        "resid_mapping": (
            "resid_last[l] = engine captures.resid[l] at the last position: l < L is hidden_states[l] "
            "(input of decoder layer l, blocks.l.hook_resid_pre); l = L is the input of model.model.norm "
            "(last hook_resid_post, before the final norm), not transformers' normed hidden_states[L]"
        ),
        "mlp_zeroing": "forward hook on model.model.layers[l].mlp returning zeros, all positions",
        "batches": batches,
    }
    path = os.path.join(out_dir, "fixture.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(fixture, f, separators=(",", ":"), sort_keys=False, allow_nan=False)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"wrote {out_dir} ({size / 1024:.0f} KiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
