#!/usr/bin/env python3
"""Reference vectors for engine/text/tokenizer, produced by Hugging Face `tokenizers` (the Rust
library behind every "fast" tokenizer) and `transformers`.

Outputs:
  tests/fixtures/tokenizers/encode_decode.json
      For each tokenizer.json in ../shared/data (Qwen3 byte-level BPE, Mistral v0.1 and the
      stories260K SentencePiece-style BPE with byte fallback) and every string of CORPUS:
      ids with and without add_special_tokens, and decode of those ids with and without
      skip_special_tokens. Plus DECODE_ONLY id lists (broken UTF-8, unknown ids, specials).
  tests/fixtures/tokenizers/added_token_flags.json
      stories260K's tokenizer.json with extra added tokens using lstrip, rstrip, single_word and
      normalized (the list as HF serializes it, for the test to splice in), and their encodings.
  tests/fixtures/tokenizers/variants.json
      Pipelines the shared files do not use, as JSON patches of stories260K's (and one of
      Qwen3's) tokenizer.json: the Metaspace pre-tokenizer and decoder (prepend_scheme first /
      always, split), ignore_merges, NFD/Strip/regex Replace normalizers, Split behaviours,
      Digits, Whitespace, WhitespaceSplit, ByteLevel with add_prefix_space and GPT-2's regex,
      TemplateProcessing with EOS, RobertaProcessing. The test applies the same patches.
  tests/fixtures/tokenizers/config_overrides.json
      transformers' update_post_processor(): Mistral's tokenizer.json with add_bos_token /
      add_eos_token given explicitly (the tokenizer_config.json keys), encoded with specials.
  engine/text/unicode_tables.cpp   (only with --unicode-tables)
      The canonical decompositions, combining classes and primary compositions that the NFC/NFD
      normalizers need, taken from HF tokenizers' own NFD/NFC (its Unicode version is older
      than Python's unicodedata: a newer mark HF does not know is a starter there). The script
      checks a reimplementation over these tables against HF's normalizers before writing.
      Also the letters and numbers that HF's regex engine (Oniguruma, newer Unicode) puts in
      \p{L} / \p{N} but Unicode 14 (PCRE2 10.40-10.42, Python 3.11's unicodedata) does not
      know: engine/text/regex.cpp adds them to those classes.

Run: .venv/bin/python tests/reference/make_tokenizer_fixtures.py [--unicode-tables]
The shared data is read from $LAYERWISE_TEST_DATA (default: ../shared/data beside the project).
"""
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata
from pathlib import Path

from tokenizers import Tokenizer, normalizers

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "tests" / "fixtures" / "tokenizers"

# Paths relative to the shared data folder; the tests resolve them the same way.
TOKENIZERS = {
    "qwen3": "tokenizers/qwen3/tokenizer.json",
    "mistral": "tokenizers/mistral-v0.1/tokenizer.json",
    "stories260K": "models/stories260K/tokenizer.json",
}

ENGLISH = (
    "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we'll leave at 6:30 -- don't wait! "
    "\"Quoted text,\" she said, (parentheses) [brackets] {braces}. I'M SHOUTING, THEY'RE NOT, WE'VE DONE IT. "
    "Prices rose 3.5% in 2023, from $1,234.56 to $1,277.77 (see table 4b).\n\n"
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine."
)
CODE_PY = (
    "def fib(n: int) -> int:\n"
    "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n\n\n"
    "if __name__ == \"__main__\":\n"
    "\tprint([fib(i) for i in range(10)])  # tab-indented\n"
)
CODE_CPP = (
    "#include <vector>\n"
    "template <typename T> T sum(const std::vector<T>& v) {\n"
    "  T s{};\n"
    "  for (auto x : v) s += x; // accumulate\n"
    "  return s;\n"
    "}\n"
    "/* block comment */ int main() { return sum<int>({1, 2, 3}) == 6 ? 0 : 1; }\r\n"
)

CORPUS = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    " \t \n ",
    "\r\n",
    "Hello world",
    " Hello world",
    "Hello World!",
    "  Hello, world!  ",
    "   leading spaces",
    "trailing spaces   ",
    "a    b\t\tc\n\n\nd \n \n e",
    "tabs\tand\t\tmore\t\t\ttabs",
    ENGLISH,
    CODE_PY,
    CODE_CPP,
    "'s 're 've 'm 'll 'd 'S 'RE 'Ve 'LL don't DON'T y'all",
    "你好，世界！这是一个测试。",
    "こんにちは世界、テストです。カタカナとひらがな",
    "안녕하세요 세계",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",
    "🦙🚀 ok 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵",
    "emoji at end 😀",
    "123 4567 89012 3.14159 1,000,000 2024-05-09 0x1F ١٢٣ ½ ² ⅷ",
    "Führer café naïve résumé Ångström",
    "e\u0301 a\u0308 o\u0302\u0323 \u212b \u1e0b\u0323 \u0071\u0307\u0323",
    "\u1100\u1161\u11a8 \uac00\u11a8",
    "nbsp\u00a0here, nel\u0085there, line\u2028sep, ideographic\u3000space, zero\u200bwidth",
    "thin\u2009space en\u2002space",
    # Letters and digits newer than Unicode 14 (HF's regex knows them, PCRE2 10.42 does not), U+180E.
    "new \U00014308'the \U00031350\U00031351 x\U00010D40\U00010D41 \u1c89 mongolian\u180e vs\u180e\u180e",
    "!!!???...---***",
    "```python\nprint('x')\n```",
    "https://example.com/path?query=1&b=2#frag",
    "user@example.com <tag attr=\"v\">text</tag>",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "========================================",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕿𝖊𝖝𝖙",
    "control\x01\x02chars\x7f",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "text<|endoftext|>more text",
    "<|im_start|><|im_end|>",
    "Hello</s>world",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "</s></s> <s> <unk>",
    " <s>x",
    "<|im_start|> spaced <|im_end|> ",
    "<|im_start",
    "Once upon a time, there was a little girl named Lily.",
    "Lily and Ben went to the park. They saw a big red ball!",
]

# Id lists to decode (not produced by encoding): broken UTF-8, unknown ids, specials in odd places.
DECODE_ONLY = {
    "qwen3": [
        ["\u00e4", "\u00bd"],                       # the first two bytes of a three-byte character
        ["\u00e4", "\u00bd", "\u0142"],             # ...completed (你 = E4 BD A0)
        ["\u00f0", "\u0141", "\u00a6", "Hello"],    # a 4-byte emoji cut after 3 bytes, then text
        ["<|im_start|>", "Ċ", "<|im_end|>"],
        ["<think>", "Hello", "</think>"],
    ],
    "mistral": [
        ["<0xE4>", "<0xBD>"],
        ["<0xE4>", "<0xBD>", "<0xA0>"],
        ["<s>", "▁", "<0x0A>", "</s>", "<unk>"],
        ["▁▁", "▁Hello", "▁▁▁", "▁world"],
        ["Hello", "▁world", "<s>", "▁again"],
    ],
    "stories260K": [
        ["<0xE4>", "<0xBD>"],
        ["<s>", "▁", "<0x0A>", "</s>"],
        ["▁", "▁", "▁a"],
    ],
}
UNKNOWN_ID = 10_000_000  # decoding skips ids outside the vocabulary


def load(name):
    return Tokenizer.from_file(str(DATA / TOKENIZERS[name]))


def encode_decode():
    cases = []
    decode_only = []
    for name in TOKENIZERS:
        tok = load(name)
        for text in CORPUS:
            with_special = tok.encode(text, add_special_tokens=True).ids
            without = tok.encode(text, add_special_tokens=False).ids
            cases.append({
                "tokenizer": name,
                "text": text,
                "ids": with_special,
                "ids_no_special": without,
                "decoded": tok.decode(with_special, skip_special_tokens=False),
                "decoded_skip": tok.decode(with_special, skip_special_tokens=True),
            })
        for tokens in DECODE_ONLY[name]:
            ids = [tok.token_to_id(t) for t in tokens]
            assert None not in ids, (name, tokens)
            for extra in ([], [UNKNOWN_ID]):
                all_ids = ids + extra
                decode_only.append({
                    "tokenizer": name,
                    "ids": all_ids,
                    "decoded": tok.decode(all_ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(all_ids, skip_special_tokens=True),
                })
    return {"tokenizers": TOKENIZERS, "cases": cases, "decode_only": decode_only}


def config_overrides():
    """transformers applies add_bos_token/add_eos_token by rebuilding the TemplateProcessing."""
    from transformers import AutoTokenizer

    src = DATA / "tokenizers" / "mistral-v0.1"
    texts = ["Hello world", "", "<s>x</s>"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(src / "tokenizer.json", tmp)
        shutil.copy(src / "tokenizer_config.json", tmp)
        for add_bos, add_eos in ((False, True), (True, True), (False, False)):
            tok = AutoTokenizer.from_pretrained(tmp, add_bos_token=add_bos, add_eos_token=add_eos)
            for text in texts:
                out.append({"add_bos_token": add_bos, "add_eos_token": add_eos, "text": text,
                            "ids": tok(text).input_ids})
    return {"tokenizer": "tokenizers/mistral-v0.1/tokenizer.json", "cases": out}


def added_token_flags():
    from tokenizers import AddedToken

    tok = load("stories260K")
    tok.add_tokens([
        AddedToken("<ls>", lstrip=True, normalized=False),
        AddedToken("<rs>", rstrip=True, normalized=False),
        AddedToken("cat", single_word=True, normalized=False),
        AddedToken("dog", normalized=True),
    ])
    tok.add_special_tokens([AddedToken("<both>", lstrip=True, rstrip=True, normalized=False)])
    added = json.loads(tok.to_str())["added_tokens"]
    texts = ["a <ls>b", "a   <ls>  b", "x<rs>   y", "x <rs>\n\ny", "cat", "a cat b", "concatenate", "cats",
             "_cat", "cat_", "(cat)", "the dog ran", "hotdog", "  <both>  z", "<both><both>", "<ls><rs>",
             "a\t\n<ls>", "dog<ls>dog", "<rs> <ls>", "caté cat"]
    cases = []
    for text in texts:
        ids = tok.encode(text).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    return {"base": TOKENIZERS["stories260K"], "added_tokens": added, "cases": cases}


SPLIT_CORPUS = [
    "", " ", "Hello world", " Hello world", "  Hello,  world!  ", "a    b\t\tc\n\n\nd \n \n e",
    "Once upon a time, there was a little girl named Lily.", "123 4567 3.14 1,000,000 ½ ١٢٣",
    "Führer café naïve e\u0301 \u212b", "the cat sat, the dog ran. The end!", "aaa bbb aaa",
    "你好，世界！", "🦙 ok 👍🏽", "<s>x</s> y", "Hello</s>world", "tabs\tand\t\tmore", "x_y-z.w",
    "'s 're DON'T", "nbsp\u00a0here\u3000there", "...!!!??", "a,b.c!d?e",
]
METASPACE_DECODER = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior, "invert": invert}


VARIANTS = {
    "metaspace_first": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}),
    "metaspace_always_split": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "decoder": METASPACE_DECODER}),
    "metaspace_never_legacy": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": False,
                          "prepend_scheme": "never"},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": False, "prepend_scheme": "never"}}),
    "metaspace_legacy": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}}),
    "ignore_merges": ("stories260K", {"model.ignore_merges": True}),
    "normalizers": ("stories260K", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}}),
    "split_behaviours": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split(" ", "MergedWithNext", literal=True), split("[,.!?]", "MergedWithPrevious"),
            split("a", "Contiguous", literal=True), {"type": "Digits", "individual_digits": True}]}}),
    "split_removed_invert": ("stories260K", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            split("\\p{L}+|\\p{N}+", "Removed", invert=True), {"type": "Digits", "individual_digits": False}]}}),
    "whitespace": ("stories260K", {"normalizer": None, "pre_tokenizer": {"type": "Whitespace"}}),
    "whitespace_split": ("stories260K", {"normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}}),
    "template_eos": ("stories260K", {"post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}),
    "roberta": ("stories260K", {"post_processor": {
        "type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": True,
        "add_prefix_space": True}}),
    "bytelevel_prefix_gpt2_regex": ("qwen3", {
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}}),
}


def patched(base, patch):
    j = json.loads(json.dumps(base))
    for key, value in patch.items():
        target = j
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return j


def variants():
    out = {}
    bases = {}
    for name, (base_name, patch) in VARIANTS.items():
        if base_name not in bases:
            bases[base_name] = json.loads((DATA / TOKENIZERS[base_name]).read_text(encoding="utf-8"))
        tok = Tokenizer.from_str(json.dumps(patched(bases[base_name], patch)))
        cases = []
        for text in SPLIT_CORPUS:
            ids = tok.encode(text).ids
            cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                          "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
        out[name] = {"base": TOKENIZERS[base_name], "patch": patch, "cases": cases}
    return out


# ---------------------------------------------------------------- Unicode tables (--unicode-tables)

def all_code_points():
    return (c for c in range(0x110000) if not 0xD800 <= c < 0xE000)


def hf_tables():
    nfd = normalizers.NFD()
    nfc = normalizers.NFC()
    decomposition = {}
    for c in all_code_points():
        if 0xAC00 <= c <= 0xD7A3:
            continue  # Hangul syllables decompose algorithmically
        d = nfd.normalize_str(chr(c))
        if d != chr(c):
            decomposition[c] = [ord(x) for x in d]
    # A mark HF's Unicode version does not know is a starter there: probe the reordering.
    ccc = {}
    for c in all_code_points():
        cls = unicodedata.combining(chr(c))
        if not cls:
            continue
        probe = "a" + chr(c) + "\u0301" + chr(c) + "\u0327"
        if nfd.normalize_str(probe) == unicodedata.normalize("NFD", probe):
            ccc[c] = cls
    compositions = []
    for c in all_code_points():
        if c not in decomposition:
            continue
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) != 2 or parts[0].startswith("<"):
            continue
        if nfc.normalize_str(chr(c)) != chr(c):
            continue  # excluded from composition
        compositions.append((int(parts[0], 16), int(parts[1], 16), c))
    return decomposition, ccc, sorted(compositions)


S_BASE, L_BASE, V_BASE, T_BASE = 0xAC00, 0x1100, 0x1161, 0x11A7
L_COUNT, V_COUNT, T_COUNT = 19, 21, 28
N_COUNT = V_COUNT * T_COUNT
S_COUNT = L_COUNT * N_COUNT


def model_nfd(s, decomposition, ccc):
    out = []
    for ch in s:
        c = ord(ch)
        if S_BASE <= c < S_BASE + S_COUNT:
            i = c - S_BASE
            out += [L_BASE + i // N_COUNT, V_BASE + (i % N_COUNT) // T_COUNT]
            if i % T_COUNT:
                out.append(T_BASE + i % T_COUNT)
        else:
            out += decomposition.get(c, [c])
    i = 0
    while i < len(out):  # stable sort of each run of non-starters by class
        if ccc.get(out[i], 0) == 0:
            i += 1
            continue
        j = i
        while j < len(out) and ccc.get(out[j], 0) != 0:
            j += 1
        out[i:j] = sorted(out[i:j], key=lambda x: ccc[x])
        i = j
    return out


def model_nfc(s, decomposition, ccc, pairs):
    cps = model_nfd(s, decomposition, ccc)
    out = []
    starter = -1
    last_class = -1
    for c in cps:
        cls = ccc.get(c, 0)
        # C combines with the last starter unless a character between them blocks it.
        if starter >= 0 and (len(out) - 1 == starter or last_class < cls):
            a = out[starter]
            if L_BASE <= a < L_BASE + L_COUNT and V_BASE <= c < V_BASE + V_COUNT:
                composed = S_BASE + ((a - L_BASE) * V_COUNT + (c - V_BASE)) * T_COUNT
            elif S_BASE <= a < S_BASE + S_COUNT and (a - S_BASE) % T_COUNT == 0 and T_BASE < c < T_BASE + T_COUNT:
                composed = a + (c - T_BASE)
            else:
                composed = pairs.get((a, c))
            if composed is not None:
                out[starter] = composed
                continue
        if cls == 0:
            starter = len(out)
        last_class = cls
        out.append(c)
    return "".join(map(chr, out))


def check_tables(decomposition, ccc, compositions):
    nfd = normalizers.NFD()
    nfc = normalizers.NFC()
    pairs = {(a, b): c for a, b, c in compositions}
    rng = random.Random(7)
    interesting = sorted(set(decomposition) | set(ccc) | {b for _, b, _ in compositions} |
                         {a for a, _, _ in compositions})
    interesting += [0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x41, 0x61, 0x20]
    samples = [chr(c) for c in interesting]
    for _ in range(200000):
        samples.append("".join(chr(rng.choice(interesting)) for _ in range(rng.randint(1, 6))))
    bad = 0
    for s in samples:
        if "".join(map(chr, model_nfd(s, decomposition, ccc))) != nfd.normalize_str(s):
            bad += 1
        elif model_nfc(s, decomposition, ccc, pairs) != nfc.normalize_str(s):
            bad += 1
        if bad and bad < 5:
            print("mismatch on", [hex(ord(x)) for x in s], file=sys.stderr)
    if bad:
        sys.exit(f"{bad} of {len(samples)} samples differ from HF; tables not written")
    print(f"unicode tables: {len(samples)} samples agree with HF NFD/NFC")


def regex_class_members(pattern):
    """The code points HF's regex engine matches with `pattern` (a one-character class)."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(pattern), "removed")
    members = set()
    points = list(all_code_points())
    for i in range(0, len(points), 5000):
        part = points[i:i + 5000]
        kept = set("".join(piece for piece, _ in split.pre_tokenize_str("".join(map(chr, part)))))
        members.update(c for c in part if chr(c) not in kept)
    return members


def ranges_of(points):
    ranges = []
    for c in sorted(points):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ranges


def regex_class_extras():
    """Per class: the ranges HF's regex engine adds to Unicode 14's general category."""
    assert unicodedata.unidata_version == "14.0.0", "the baseline must be Unicode 14 (run with Python 3.11)"
    extras = {}
    for name, prefix in (("letter", "L"), ("number", "N")):
        hf = regex_class_members(r"\p{" + prefix + "}")
        base = {c for c in all_code_points() if unicodedata.category(chr(c)).startswith(prefix)}
        if base - hf:
            sys.exit(f"HF's \\p{{{prefix}}} lacks {len(base - hf)} code points of Unicode 14; the tables need a subtraction")
        extras[name] = ranges_of(hf - base)
    return extras


def write_unicode_tables():
    decomposition, ccc, compositions = hf_tables()
    check_tables(decomposition, ccc, compositions)
    extras = regex_class_extras()
    lines = [
        "// Generated by tests/reference/make_tokenizer_fixtures.py --unicode-tables: do not edit.",
        "// Canonical decompositions (full, Hangul excluded), canonical combining classes and",
        "// primary compositions, as HF tokenizers' NFD/NFC normalizers use them.",
        "#include \"text/unicode_tables.h\"",
        "",
        "namespace layerwise::text::tables {",
        "",
    ]
    chars = []
    index = []
    for c in sorted(decomposition):
        index.append((c, len(chars), len(decomposition[c])))
        chars += decomposition[c]
    lines.append(f"const char32_t decomposition_chars[{len(chars)}] = {{")
    for i in range(0, len(chars), 10):
        lines.append("    " + ", ".join(f"0x{x:X}" for x in chars[i:i + 10]) + ",")
    lines.append("};")
    lines.append(f"const Decomposition decompositions[{len(index)}] = {{")
    for i in range(0, len(index), 5):
        lines.append("    " + " ".join(f"{{0x{c:X}, {o}, {n}}}," for c, o, n in index[i:i + 5]))
    lines.append("};")
    lines.append(f"const std::size_t decomposition_count = {len(index)};")
    ranges = []  # runs of consecutive code points with the same class
    for c in sorted(ccc):
        if ranges and ranges[-1][1] == c - 1 and ranges[-1][2] == ccc[c]:
            ranges[-1][1] = c
        else:
            ranges.append([c, c, ccc[c]])
    lines.append(f"const CombiningClassRange combining_classes[{len(ranges)}] = {{")
    for i in range(0, len(ranges), 5):
        lines.append("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, {k}}}," for a, b, k in ranges[i:i + 5]))
    lines.append("};")
    lines.append(f"const std::size_t combining_class_count = {len(ranges)};")
    lines.append(f"const Composition compositions[{len(compositions)}] = {{")
    for i in range(0, len(compositions), 4):
        lines.append("    " + " ".join(f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for a, b, c in compositions[i:i + 4]))
    lines.append("};")
    lines.append(f"const std::size_t composition_count = {len(compositions)};")
    for name, extra in extras.items():
        lines.append(f"const CodePointRange regex_{name}_extra[{len(extra)}] = {{")
        for i in range(0, len(extra), 5):
            lines.append("    " + " ".join(f"{{0x{a:X}, 0x{b:X}}}," for a, b in extra[i:i + 5]))
        lines.append("};")
        lines.append(f"const std::size_t regex_{name}_extra_count = {len(extra)};")
    lines += ["", "} // namespace layerwise::text::tables", ""]
    path = ROOT / "engine" / "text" / "unicode_tables.cpp"
    path.write_text("\n".join(lines))
    print(f"wrote {path}: {len(index)} decompositions, {len(ranges)} class ranges, {len(compositions)} compositions, "
          f"{len(extras['letter'])} + {len(extras['number'])} regex class ranges")


def main():
    if "--unicode-tables" in sys.argv:
        write_unicode_tables()
    OUT.mkdir(parents=True, exist_ok=True)
    data = encode_decode()
    (OUT / "encode_decode.json").write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    flags = added_token_flags()
    (OUT / "added_token_flags.json").write_text(json.dumps(flags, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (OUT / "variants.json").write_text(json.dumps(variants(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    overrides = config_overrides()
    (OUT / "config_overrides.json").write_text(json.dumps(overrides, ensure_ascii=False, indent=1) + "\n",
                                               encoding="utf-8")
    print(f"{len(data['cases'])} encode cases, {len(data['decode_only'])} decode cases, "
          f"{len(overrides['cases'])} add_bos/add_eos cases")


if __name__ == "__main__":
    main()
