#!/usr/bin/env python3
"""Answers in gpt-oss's harmony format, tokenized by Hugging Face `tokenizers`, for the harmony reader
(engine/text/harmony.h).

Output: tests/fixtures/tokenizers/harmony.json
    The shared Qwen3 tokenizer.json's name, the harmony special tokens as HF serializes them once
    added to it (the test splices them in), and answers a harmony model writes after
    "<|start|>assistant": each as its messages (channel, text, how it ends), the whole text, its ids
    by HF, and what a reader must make of it: the analysis channel's text (the reasoning) and the
    final channel's (the answer). The message layout is the one openai-harmony documents and
    gpt-oss's chat template renders:
        <|channel|>CHANNEL[ to=RECIPIENT][<|constrain|>FORMAT]<|message|>TEXT<|end|>   (more follow:
        <|start|>assistant...), and the last message ends with <|return|> (or <|call|> for a tool call).

Run: .venv/bin/python tests/reference/make_harmony_fixture.py
The shared data is read from $LAYERWISE_TEST_DATA (default: ../shared/data beside the project).
"""
import json
import os
from pathlib import Path

from tokenizers import AddedToken, Tokenizer

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))
BASE = "tokenizers/qwen3/tokenizer.json"
SPECIALS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>"]

# (messages: (channel header, text, end)) -> the answer as the model writes it
ANSWERS = [
    [("final", "Paris is the capital of France.", "<|return|>")],
    [("analysis", "User asks the capital. It is Paris.", "<|end|>"),
     ("final", "The capital of France is Paris.", "<|return|>")],
    [("analysis", "Need weather: call the tool.", "<|end|>"),
     ("commentary to=functions.get_weather <|constrain|>json", '{"city": "Tokyo"}', "<|call|>")],
    [("analysis", "Think in two steps. ", "<|end|>"),
     ("analysis", "Step two: 7 × 6 = 42 — done.", "<|end|>"),
     ("final", "42 🎉, naïve café.", "<|return|>")],
    [("analysis", "A reply cut short by the token budget", "")],
]


def main():
    tok = Tokenizer.from_file(str(SHARED / BASE))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    added = [a for a in json.loads(tok.to_str())["added_tokens"] if a["content"] in SPECIALS]
    cases = []
    for messages in ANSWERS:
        text = ""
        for i, (header, body, end) in enumerate(messages):
            if i:
                text += "<|start|>assistant"
            text += "<|channel|>" + header + "<|message|>" + body + end
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text,
            "ids": ids,
            "reasoning": "".join(b for h, b, _ in messages if h == "analysis"),
            "answer": "".join(b for h, b, _ in messages if h == "final"),
            "done": messages[-1][2] in ("<|return|>", "<|call|>"),
            "last_channel": messages[-1][0].split(" ")[0],
        })
    out = {"base": BASE, "added_tokens": added, "cases": cases}
    path = ROOT / "tests" / "fixtures" / "tokenizers" / "harmony.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(path, len(cases), "answers")


if __name__ == "__main__":
    main()
