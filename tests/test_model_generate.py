"""generate(): greedy is deterministic and equals re-running the full prefix; sampling is seeded."""

from __future__ import annotations

import pytest
import torch

from tokenmill.train.generate import generate
from tokenmill.train.model import Transformer, model_args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(5)
    return Transformer(model_args("tiny", init_std=0.1, max_seq_len=64))


def _greedy_without_cache(model: Transformer, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    model.eval()
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids])).logits_BTV[0, -1].argmax()))
    return ids[len(prompt):]


def test_greedy_is_deterministic_and_matches_uncached_decoding(model):
    prompt = [3, 14, 15, 92, 65]
    first = generate(model, prompt, 24)
    assert first == generate(model, prompt, 24)
    assert len(first) == 24
    assert first == _greedy_without_cache(model, prompt, 24)  # the latent KV cache changes nothing


def test_sampling_is_seeded(model):
    prompt = [7, 7, 7]
    a = generate(model, prompt, 16, temperature=1.0, seed=1)
    assert a == generate(model, prompt, 16, temperature=1.0, seed=1)
    assert a != generate(model, prompt, 16, temperature=1.0, seed=2)


def test_generation_stops_at_eos_and_context_end(model):
    prompt = [3, 14, 15]
    greedy = generate(model, prompt, 10)
    assert generate(model, prompt, 10, eos_id=greedy[2]) == greedy[:greedy.index(greedy[2]) + 1]
    assert len(generate(model, [1] * 60, 10)) == 4  # max_seq_len 64


def test_bad_prompts_are_refused_with_a_reason(model):
    with pytest.raises(ValueError, match="empty"):
        generate(model, [], 4)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, [1, 5000], 4)


def test_generate_text_from_a_checkpoint(tmp_path):
    """End to end: a real byte-level BPE, a checkpoint written by train/checkpoint.py, text back out."""
    import dataclasses

    from tokenmill.tokenize.tokenizer import load_tokenizer, train_tokenizer_from_texts
    from tokenmill.train.checkpoint import save_checkpoint
    from tokenmill.train.generate import generate_text

    texts = [f"document {i} talks about rivers, mountains and {w} weather." for i, w in
             enumerate(["sunny", "rainy", "windy", "cold", "warm", "humid"] * 20)]
    tok_path = train_tokenizer_from_texts(texts, tmp_path / "tokenizer.json", vocab_size=300)
    vocab = load_tokenizer(tok_path).get_vocab_size()
    torch.manual_seed(6)
    model = Transformer(model_args("tiny", vocab_size=vocab, init_std=0.1))
    meta = {"model_args": dataclasses.asdict(model.args), "tokenizer": str(tok_path)}
    opt = torch.optim.AdamW(model.parameters())
    folder = save_checkpoint(tmp_path / "run", 1, model.state_dict(), opt.state_dict(), {}, meta, keep_last=1)
    text = generate_text(str(folder), "document 3 talks", max_new_tokens=12)
    assert text == generate_text(str(tmp_path / "run"), "document 3 talks", max_new_tokens=12)  # run dir works too
    ids = load_tokenizer(tok_path).encode("document 3 talks").ids
    expected = generate(model, ids, 12, eos_id=load_tokenizer(tok_path).token_to_id("<|endoftext|>"))
    assert text == load_tokenizer(tok_path).decode(expected)
    assert len(text) > 0


def test_generate_cli_reports_bad_inputs_in_one_line(tmp_path, capsys):
    """A missing checkpoint or an empty prompt: `tokenmill: error: ...` and exit 2, not a traceback."""
    from tokenmill.cli import main

    assert main(["generate", str(tmp_path / "no-run"), "--prompt", "x"]) == 2
    assert "no usable checkpoint" in capsys.readouterr().err


def test_absorbed_decode_step_equals_the_full_forward(model):
    """A cached single-token step (wkv_b folded into q and the output) gives the full forward's last logits."""
    from tokenmill.train.mla import LatentCache

    tokens_BT = torch.randint(0, 1024, (2, 40))
    model.eval()
    with torch.no_grad():
        full_BV = model(tokens_BT).logits_BTV[:, -1]
        cache = LatentCache()
        model(tokens_BT[:, :-1], cache=cache)
        step_BV = model(tokens_BT[:, -1:], cache=cache).logits_BTV[:, -1]
    assert ((step_BV - full_BV).norm() / full_BV.norm()) < 1e-5
