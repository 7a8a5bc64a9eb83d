#!/usr/bin/env python3
"""`layerwise serve` driven by OpenAI's own Python client (the `openai` package from PyPI).

Greedy text over HTTP equals `layerwise generate --greedy`; streamed and whole answers agree;
stop sequences, usage counts, bad input (each a 400 with OpenAI's error object, the server still
up), the body cap, API keys, a client that disconnects (streaming or not) freeing the server,
and concurrent requests decoded together (continuous batching) each giving its own greedy text.
Run by ctest (tst_server_openai) with LAYERWISE_BIN, LAYERWISE_TEST_DATA and LAYERWISE_VENV set.
Exits 77 (skipped) when the openai package is missing.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

try:
    import openai
except ImportError:
    print("the openai package is not installed in this Python: skipped")
    sys.exit(77)

BIN = os.environ["LAYERWISE_BIN"]
STORIES = os.path.join(os.environ["LAYERWISE_TEST_DATA"], "models", "stories260K")
PROMPT = "Once upon a time"


def default_chat_model():
    try:
        with open(os.path.join(os.environ.get("LAYERWISE_VENV", ""), "default_model.txt")) as f:
            path = f.readline().strip()
        return path if os.path.isfile(path) else None
    except OSError:
        return None


class Server:
    """`layerwise serve` on a free loopback port, its stderr log kept line by line."""

    def __init__(self, model, *args):
        self.proc = subprocess.Popen([BIN, "serve", model, "--port", "0", "--threads", "2", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        found = re.search(r"http://\S+/v1", line)  # http://127.0.0.1:PORT/v1
        if not found:
            self.proc.kill()
            raise RuntimeError("serve did not start: " + line + self.proc.stderr.read())
        self.base = found.group(0)
        self.root = self.base[: -len("/v1")]
        self.port = int(self.root.rsplit(":", 1)[1])
        self.log = []
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def client(self, key="none"):
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=120)

    def get(self, path):
        with urllib.request.urlopen(self.root + path, timeout=30) as r:
            return json.loads(r.read())

    def post_raw(self, path, body, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def generate_greedy(model, prompt, tokens):
    """What `layerwise generate --greedy` prints after the prompt, without its closing stats line."""
    out = subprocess.run([BIN, "generate", model, "--prompt", prompt, "--greedy", "--max-new-tokens", str(tokens)],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(prompt), out
    out = out.rstrip("\n")
    return out[len(prompt): out.rindex("\n")]


class Completions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(STORIES, "--context", "256", "--max-body-bytes", "65536")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def complete(self, **kw):
        args = dict(model="stories260K", prompt=PROMPT, max_tokens=40, temperature=0)
        args.update(kw)
        return self.client.completions.create(**args)

    def test_models_and_health(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], ["stories260K"])
        self.assertEqual(self.server.get("/health")["status"], "ok")

    def test_greedy_equals_generate(self):
        r = self.complete()
        self.assertEqual(r.choices[0].text, generate_greedy(STORIES, PROMPT, 40))
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.object, "text_completion")

    def test_concurrent_requests_each_equal_generate(self):
        # Six clients at once on four slots: four decode together, two join as slots free up;
        # each answer is the one `generate --greedy` gives for its prompt alone.
        prompts = ["Once upon a time", "Zoo", "The little dog", "One day, Lily", "Tom had a", "The sun"]
        answers = {}

        def ask(prompt):
            answers[prompt] = self.complete(prompt=prompt, max_tokens=60).choices[0].text

        threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in prompts:
            self.assertEqual(answers[p], generate_greedy(STORIES, p, 60), p)
        self.assertEqual(self.server.get("/health")["slots"], 4)

    def test_usage_counts(self):
        r = self.complete(max_tokens=12)
        prompt_ids = self.server.post_raw("/tokenize", json.dumps({"content": PROMPT, "add_special": True}))
        self.assertEqual(r.usage.prompt_tokens, len(json.loads(prompt_ids[1])["tokens"]))
        self.assertEqual(r.usage.completion_tokens, 12)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + 12)

    def test_stream_equals_whole(self):
        whole = self.complete().choices[0].text
        chunks = list(self.complete(stream=True, stream_options={"include_usage": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, whole)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishes, ["length"])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, 40)

    def test_stop_sequences(self):
        whole = self.complete().choices[0].text
        stop = whole[len(whole) // 2: len(whole) // 2 + 4]  # four characters from the middle
        expected = whole[: whole.index(stop)]
        r = self.complete(stop=[stop, "never-seen"])
        self.assertEqual(r.choices[0].text, expected)
        self.assertEqual(r.choices[0].finish_reason, "stop")
        streamed = "".join(c.choices[0].text for c in self.complete(stop=stop, stream=True) if c.choices)
        self.assertEqual(streamed, expected)

    def test_echo_and_token_prompt(self):
        whole = self.complete(max_tokens=10).choices[0].text
        self.assertEqual(self.complete(max_tokens=10, echo=True).choices[0].text, PROMPT + whole)
        ids = json.loads(self.server.post_raw("/tokenize", json.dumps({"content": PROMPT, "add_special": True}))[1])["tokens"]
        self.assertEqual(self.complete(max_tokens=10, prompt=ids).choices[0].text, whole)
        text = json.loads(self.server.post_raw("/detokenize", json.dumps({"tokens": ids}))[1])["content"]
        self.assertIn(PROMPT, text)

    def test_seeded_sampling_repeats(self):
        a = self.complete(temperature=0.9, top_p=0.95, seed=7).choices[0].text
        b = self.complete(temperature=0.9, top_p=0.95, seed=7).choices[0].text
        self.assertEqual(a, b)

    def test_penalties_change_greedy_text(self):
        plain = self.complete(max_tokens=60).choices[0].text
        penalized = self.complete(max_tokens=60, frequency_penalty=2.0, presence_penalty=2.0).choices[0].text
        self.assertNotEqual(plain, penalized)

    def test_bad_input_is_400_and_server_stays_up(self):
        cases = [
            lambda: self.client.completions.create(model="m", prompt=PROMPT, max_tokens="ten"),
            lambda: self.client.completions.create(model="m", prompt=PROMPT, temperature=5),
            lambda: self.client.completions.create(model="m", prompt=PROMPT, stop=["a", "b", "c", "d", "e"]),
            lambda: self.client.completions.create(model="m", prompt=PROMPT, n=2),
            lambda: self.client.completions.create(model="m", prompt=" ".join(["story"] * 400)),
            lambda: self.client.chat.completions.create(model="m", messages=[]),
            lambda: self.client.chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}]),
            lambda: self.client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        ]
        for i, case in enumerate(cases):
            with self.subTest(case=i):
                with self.assertRaises(openai.BadRequestError) as e:
                    case()
                self.assertEqual(e.exception.status_code, 400)
                self.assertTrue(e.exception.body["message"])
        too_long = self.assertRaises(openai.BadRequestError)
        with too_long:
            self.client.completions.create(model="m", prompt=" ".join(["story"] * 400))
        self.assertEqual(too_long.exception.body["code"], "context_length_exceeded")
        for body in [b"{not json", b"[1, 2]", b'{"prompt": {"a": 1}}']:
            status, data = self.server.post_raw("/v1/completions", body)
            self.assertEqual(status, 400)
            self.assertIn("message", json.loads(data)["error"])
        self.assertEqual(self.server.get("/health")["status"], "ok")
        self.assertEqual(len(self.complete(max_tokens=5).choices[0].text) > 0, True)

    def test_body_cap(self):
        status, data = self.server.post_raw("/v1/completions", json.dumps({"prompt": "x" * 100000}))
        self.assertEqual(status, 413)
        self.assertIn("too large", json.loads(data)["error"]["message"])
        self.assertEqual(self.server.get("/health")["status"], "ok")


class Access(unittest.TestCase):
    def test_api_key(self):
        server = Server(STORIES, "--context", "64", "--api-key", "s3cret")
        try:
            with self.assertRaises(openai.AuthenticationError):
                server.client("wrong").completions.create(model="m", prompt=PROMPT, max_tokens=2)
            r = server.client("s3cret").completions.create(model="m", prompt=PROMPT, max_tokens=2)
            self.assertEqual(r.usage.completion_tokens, 2)
            self.assertEqual(server.get("/health")["status"], "ok")  # health needs no key
        finally:
            server.close()

    def test_network_address_needs_a_key(self):
        r = subprocess.run([BIN, "serve", STORIES, "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True,
                           timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--api-key", r.stderr)


@unittest.skipUnless(default_chat_model(), "no default chat model installed (packaging/setup.sh installs one)")
class Chat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(default_chat_model(), "--context", "2048")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def chat(self, **kw):
        args = dict(model="smol", messages=[{"role": "system", "content": "You are brief."},
                                            {"role": "user", "content": "Name three colours."}],
                    max_tokens=24, temperature=0)
        args.update(kw)
        return self.client.chat.completions.create(**args)

    def test_stream_equals_whole(self):
        # Each request keeps the cache of the prompt it shares with the last one (the prefix
        # cache), and a prompt token computed in a batch rounds differently from one computed
        # alone. A first identical request puts both compared requests on the same footing.
        self.chat()
        whole = self.chat()
        self.assertEqual(whole.choices[0].message.role, "assistant")
        self.assertTrue(whole.choices[0].message.content)
        chunks = list(self.chat(stream=True, stream_options={"include_usage": True}))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[-1].usage.completion_tokens, whole.usage.completion_tokens)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_disconnect_frees_the_server(self):
        # A long answer, streamed; the client reads three events and hangs up.
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        body = {"model": "smol", "stream": True, "max_tokens": 1500, "temperature": 0.8, "seed": 1,
                "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}]}
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        for _ in range(3):
            self.assertTrue(r.readline().startswith(b"data: "))
            r.readline()
        conn.sock.close()
        conn.close()
        deadline = time.time() + 15
        while time.time() < deadline and self.server.get("/health")["active_clients"] != 0:
            time.sleep(0.1)
        self.assertEqual(self.server.get("/health")["active_clients"], 0)
        # The next request is answered at once, and the log says the first one was cancelled early.
        t0 = time.time()
        self.chat(max_tokens=4)
        self.assertLess(time.time() - t0, 10)
        cancelled = [line for line in self.server.log if line.endswith("s") and "disconnected" in line]
        self.assertGreaterEqual(len(cancelled), 1, self.server.log)
        completion = int(cancelled[0].split("completion ")[1].split()[0])
        self.assertLess(completion, 1500)

    def test_request_joins_a_running_one(self):
        # While a long answer streams, a short request is answered before it ends: it joins the
        # running batch instead of waiting its turn.
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        body = {"model": "smol", "stream": True, "max_tokens": 1500, "temperature": 0.8, "seed": 2,
                "messages": [{"role": "user", "content": "Write a very long story about a harbour."}]}
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        for _ in range(3):
            self.assertTrue(r.readline().startswith(b"data: "))
            r.readline()
        short = self.chat(max_tokens=4)
        self.assertEqual(short.usage.completion_tokens, 4)
        line = r.readline()
        self.assertTrue(line.startswith(b"data: {"), line)
        self.assertIsNone(json.loads(line[len(b"data: "):])["choices"][0]["finish_reason"])
        conn.sock.close()
        conn.close()

    def test_whole_request_disconnect_cancels(self):
        # A client waiting for a whole (not streamed) long answer hangs up: the generation stops.
        before = len([line for line in self.server.log if "disconnected" in line])
        body = json.dumps({"model": "smol", "max_tokens": 1500, "temperature": 0.8, "seed": 3,
                           "messages": [{"role": "user", "content": "Write a very long story about a forest."}]})
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=30)
        sock.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        deadline = time.time() + 15
        while time.time() < deadline and self.server.get("/health")["active_clients"] == 0:
            time.sleep(0.05)
        time.sleep(0.5)
        sock.close()
        deadline = time.time() + 15
        while time.time() < deadline and self.server.get("/health")["active_clients"] != 0:
            time.sleep(0.1)
        self.assertEqual(self.server.get("/health")["active_clients"], 0)
        deadline = time.time() + 5
        while time.time() < deadline and len([line for line in self.server.log if "disconnected" in line]) == before:
            time.sleep(0.1)
        cancelled = [line for line in self.server.log if "disconnected" in line]
        self.assertEqual(len(cancelled), before + 1, self.server.log)
        self.assertLess(int(cancelled[-1].split("completion ")[1].split()[0]), 1500)


if __name__ == "__main__":
    unittest.main(verbosity=2)
