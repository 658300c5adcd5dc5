#!/usr/bin/env python3
"""make_tiny_model: writes a tiny qwen2 GGUF model whose greedy output is fixed by hand-set
weights, for the compatibility test against llama-server (tests/compat/test_llama.py).

It uses llama.cpp's own gguf-py (PYTHONPATH=<tree>/gguf-py; needs numpy) and a real tokenizer:
the tree's models/ggml-vocab-qwen2.gguf, with four of its unused [PAD] tokens named as in
Qwen2.5/Qwen3 (<tool_call>, </tool_call>, <tool_response>, </tool_response>), and the tree's
Qwen2.5-Instruct chat template, so llama-server --jinja formats tools and parses tool calls
as it does for that model family.

How the weights make it answer (one layer, n_embd 128):
- Attention and FFN outputs add nothing but three flags, so the residual stream is the current
  token's embedding (one-hot) plus flags, and the output head is a bigram table: each token of
  an answer chain maps to the next one, the last to <|im_end|>. Chains are built from tokens
  that are all distinct (checked), so greedy decoding walks them exactly.
- The chain starts at "\\n", the last token of the prompt (<|im_start|>assistant\\n). Which
  chain it takes depends on three attention heads; each has a constant query and a key only
  on its marker token, so it attends to the marker when the context holds one and writes a
  flag; with no marker its values are zero:
    tool head     <tool_call> (in the system prompt when the request has tools)
    response head <tool_response> (a tool result in the conversation)
    history head  a token of the answer given after a tool result (an earlier turn)
  At "\\n" the logits are: TEXT 20, TOOL 40 x tool flag, ANSWER 60 x response flag,
  AGAIN 80 x history flag; every chain step is 400, so no flag bias ever breaks a chain.
  So: no tools -> TEXT; tools -> the TOOL call; after its result -> ANSWER; a later turn
  that sees ANSWER in its history -> AGAIN.

Usage: make_tiny_model.py --tree <llama.cpp src> --out <dir> [--tokenize <llama-tokenize>]
Writes <dir>/tiny-qwen-tools.gguf and <dir>/tiny-qwen-tools.json (the chains' texts and
token ids, read by the test). With --tokenize it checks, with llama.cpp's own tokenizer, that
the prompt ends in "\\n" and that the history marker is a token of ANSWER's text as a server
would tokenize it again from the history.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

D = 128          # n_embd
N_HEAD = 4
HEAD_DIM = D // N_HEAD
N_FF = 32
CTX = 8192
EPS = 1e-6

# Renamed [PAD] tokens: the ids Qwen2.5/Qwen3 give these (USER_DEFINED, rendered as text).
TOOL_CALL, TOOL_CALL_END, TOOL_RESPONSE, TOOL_RESPONSE_END = 151657, 151658, 151665, 151666
ENDOFTEXT, IM_START, IM_END = 151643, 151644, 151645
NEWLINE_TEXT = "\n"

TEXTS = {
    # the call the model makes whenever the request has tools (get_weather of examples/agents)
    "tool_args": {"city": "Paris"},
    "tool_name": "get_weather",
    # after a tool result
    "answer": "Paris is sunny and 18 C today: pack light.",
    # when an earlier turn's answer is in the history
    "again": "As I said before, expect sun!",
    # no tools in the request
    "text": "The Louvre opens at nine; locals dine late",
}
HISTORY_MARKER = " today"   # a token of "answer" (canonically tokenized), nowhere else


def byte_decoder():
    """GPT-2's byte-level BPE alphabet: printable unicode char -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def load_vocab(gguf, path):
    r = gguf.GGUFReader(path)
    f = r.fields
    tokens = list(f["tokenizer.ggml.tokens"].contents())
    types = list(f["tokenizer.ggml.token_type"].contents())
    merges = list(f["tokenizer.ggml.merges"].contents())
    pre = f["tokenizer.ggml.pre"].contents()
    return tokens, types, merges, pre


def token_bytes(tokens, types):
    """bytes -> id of every normal token (the first id when two spell the same bytes)."""
    dec = byte_decoder()
    out = {}
    for i, (t, ty) in enumerate(zip(tokens, types)):
        if ty != 1:
            continue
        try:
            b = bytes(dec[c] for c in t)
        except KeyError:
            continue
        out.setdefault(b, i)
    return out


def chain_tokens(text, by_bytes, used):
    """Splits text into tokens none of which is in used nor repeated (a depth-first search,
    longest token first); adds them to used."""
    data = text.encode()
    longest = max(len(b) for b in by_bytes)
    budget = [200000]  # search steps: a text that needs more wants other words

    def walk(i, taken):
        if i == len(data):
            return []
        budget[0] -= 1
        if budget[0] < 0:
            return None
        for n in range(min(longest, len(data) - i), 0, -1):
            tid = by_bytes.get(data[i:i + n])
            if tid is None or tid in used or tid in taken:
                continue
            taken.add(tid)
            rest = walk(i + n, taken)
            if rest is not None:
                return [tid] + rest
            taken.discard(tid)
        return None

    out = walk(0, set())
    if out is None:
        sys.exit("make_tiny_model: no split of %r into unused tokens; change the text" % text)
    used.update(out)
    return out


def tokenize(exe, vocab, text):
    """Token ids of text with llama.cpp's tokenizer (special tokens parsed, no BOS)."""
    r = subprocess.run([exe, "-m", vocab, "-p", text, "--ids", "--log-disable", "--no-bos"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit("make_tiny_model: %s failed: %s" % (exe, r.stderr[-2000:]))
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("[")][-1]
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", required=True, help="llama.cpp source tree")
    ap.add_argument("--out", required=True, help="folder for the .gguf and its .json")
    ap.add_argument("--tokenize", help="llama-tokenize, to check the token assumptions")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.tree, "gguf-py"))
    import gguf

    vocab_path = os.path.join(a.tree, "models", "ggml-vocab-qwen2.gguf")
    template = open(os.path.join(a.tree, "models", "templates",
                                 "Qwen-Qwen2.5-7B-Instruct.jinja")).read()
    tokens, types, merges, pre = load_vocab(gguf, vocab_path)
    n_vocab = len(tokens)
    for tid, name in ((TOOL_CALL, "<tool_call>"), (TOOL_CALL_END, "</tool_call>"),
                      (TOOL_RESPONSE, "<tool_response>"),
                      (TOOL_RESPONSE_END, "</tool_response>")):
        assert tokens[tid].startswith("[PAD"), (tid, tokens[tid])
        tokens[tid] = name
        types[tid] = 4  # USER_DEFINED: parsed in prompts, rendered in the output text
    by_bytes = token_bytes(tokens, types)
    newline = by_bytes[NEWLINE_TEXT.encode()]
    marker = by_bytes[HISTORY_MARKER.encode()]

    # The chains. "\n" starts them all, so no chain may use it; all tokens are distinct.
    used = {newline}
    call = json.dumps({"name": TEXTS["tool_name"], "arguments": TEXTS["tool_args"]},
                      separators=(",", ":"))  # compact: spaced JSON repeats tokens
    # "\n" alone is taken (the chains' start), so the call opens with "\n\n": the server's
    # parser allows any whitespace there.
    tool = [TOOL_CALL] + chain_tokens("\n\n" + call + "\n", by_bytes, used) + [TOOL_CALL_END]
    used.add(marker)  # ANSWER must use the marker itself: put it in by hand
    ans_text = TEXTS["answer"]
    k = ans_text.index(HISTORY_MARKER)
    answer = chain_tokens(ans_text[:k], by_bytes, used) + [marker] + \
        chain_tokens(ans_text[k + len(HISTORY_MARKER):], by_bytes, used)
    again = chain_tokens(TEXTS["again"], by_bytes, used)
    text = chain_tokens(TEXTS["text"], by_bytes, used)
    chains = {"tool": tool, "answer": answer, "again": again, "text": text}
    every = [t for c in chains.values() for t in c]
    assert len(every) == len(set(every)), "a token repeats across the chains"

    # Dimensions: one per source token (the chains' tokens, "\n"), the markers' when they are
    # not sources, three flags, and one shared by every other token.
    sources = [newline] + [t for c in chains.values() for t in c]
    dim = {t: i for i, t in enumerate(sources)}
    for t in (TOOL_RESPONSE,):
        dim[t] = len(dim)
    f_tool, f_resp, f_hist, d_other = D - 4, D - 3, D - 2, D - 1
    assert len(dim) < f_tool, "too many chain tokens for n_embd %d" % D

    emb = np.zeros((n_vocab, D), np.float32)
    emb[:, d_other] = 1.0
    for t, i in dim.items():
        emb[t, d_other] = 0.0
        emb[t, i] = 1.0
    norm = np.sqrt(D)       # an RMS-normed one-hot entry
    flag = 0.1              # a flag in the residual stream
    flag_n = flag * norm    # ... after the output norm (the one-hot entry dominates the RMS)

    out = np.zeros((n_vocab, D), np.float32)
    step = 400.0
    for c in chains.values():
        for t, nxt in zip(c, c[1:] + [IM_END]):
            out[nxt, dim[t]] = step / norm
    out[IM_END, d_other] = 300.0 / norm   # an unexpected last token: end at once
    out[text[0], dim[newline]] = 20.0 / norm
    out[tool[0], f_tool] = 40.0 / flag_n
    out[answer[0], f_resp] = 60.0 / flag_n
    out[again[0], f_hist] = 80.0 / flag_n

    # Attention: head h has a constant query in its dimension qd (in the slowest RoPE pair, so
    # the score hardly depends on distance) and a key only on its marker; score 25 for a
    # marker, 0 for any other token. Its value (1 on the marker) goes to its flag.
    wq = np.zeros((D, D), np.float32)
    bq = np.zeros(D, np.float32)
    wk = np.zeros((D, D), np.float32)
    wv = np.zeros((D, D), np.float32)
    wo = np.zeros((D, D), np.float32)
    qd = HEAD_DIM - 1  # the slowest RoPE pair in both NEOX and normal layouts
    qv = 5.0
    for h, (mtok, fdim) in enumerate(((TOOL_CALL, f_tool), (TOOL_RESPONSE, f_resp),
                                      (marker, f_hist))):
        row = h * HEAD_DIM + qd
        bq[row] = qv
        wk[row, dim[mtok]] = 25.0 * np.sqrt(HEAD_DIM) / (qv * norm)
        vrow = h * HEAD_DIM + HEAD_DIM - 2   # a dimension RoPE leaves to V alone
        wv[vrow, dim[mtok]] = 1.0 / norm
        wo[fdim, vrow] = flag

    name = "tiny-qwen-tools"
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, name + ".gguf")
    w = gguf.GGUFWriter(path + ".tmp", "qwen2")
    w.add_name(name)
    w.add_context_length(CTX)
    w.add_embedding_length(D)
    w.add_block_count(1)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(EPS)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(ENDOFTEXT)
    w.add_eos_token_id(IM_END)
    w.add_pad_token_id(ENDOFTEXT)
    w.add_add_bos_token(False)
    w.add_chat_template(template)
    f32 = np.float32
    w.add_tensor("token_embd.weight", emb.astype(np.float16))
    w.add_tensor("output_norm.weight", np.ones(D, f32))
    w.add_tensor("output.weight", out.astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(D, f32))
    w.add_tensor("blk.0.attn_q.weight", wq)
    w.add_tensor("blk.0.attn_q.bias", bq)
    w.add_tensor("blk.0.attn_k.weight", wk)
    w.add_tensor("blk.0.attn_k.bias", np.zeros(D, f32))
    w.add_tensor("blk.0.attn_v.weight", wv)
    w.add_tensor("blk.0.attn_v.bias", np.zeros(D, f32))
    w.add_tensor("blk.0.attn_output.weight", wo)
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(D, f32))
    w.add_tensor("blk.0.ffn_gate.weight", np.zeros((N_FF, D), f32))
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((N_FF, D), f32))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((D, N_FF), f32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(path + ".tmp", path)

    if a.tokenize:  # with llama.cpp's tokenizer, on the model just written
        def fail(what):
            os.unlink(path)
            sys.exit("make_tiny_model: %s; model removed" % what)
        prompt = tokenize(a.tokenize, path, "<|im_start|>user\nhi<|im_end|>\n"
                          "<|im_start|>assistant\n")
        if prompt[-1] != newline:
            fail("the prompt does not end in \\n: %r" % prompt)
        if marker not in tokenize(a.tokenize, path, ans_text):
            fail("the marker %r is not a token of ANSWER" % HISTORY_MARKER)
        marks = tokenize(a.tokenize, path, "<tool_call>x</tool_call><tool_response>")
        if marks[0] != TOOL_CALL or TOOL_RESPONSE not in marks:
            fail("<tool_call>/<tool_response> are not single tokens: %r" % marks)
        print("make_tiny_model: checked with %s: the prompt ends in \\n (%d), the marker %r "
              "(%d) is a token of ANSWER, the tool markers are tokens" % (
                  a.tokenize, newline, HISTORY_MARKER, marker))

    meta = dict(TEXTS, tool_call=call, history_marker=HISTORY_MARKER,
                chains={k: v for k, v in chains.items()}, newline=newline)
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("make_tiny_model: wrote %s (%d bytes) and %s.json; chain lengths %s" % (
        path, os.path.getsize(path), name, {k: len(v) for k, v in chains.items()}))


if __name__ == "__main__":
    main()
