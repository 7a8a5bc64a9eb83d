#!/usr/bin/env python3
"""Reference renderings of chat templates by Python jinja2, configured exactly as transformers does.

  tests/fixtures/chat_templates/chats.json     chat-template families (ChatML, Llama-3, Llama-2, Gemma, Phi-3,
                                               Mistral with tools, documents, macros) over a set of conversations,
                                               rendered by transformers' render_jinja_template; the shared tokenizers'
                                               own templates (qwen3; mistral-v0.1 has none: the ChatML fallback)
                                               rendered by AutoTokenizer.apply_chat_template(tokenize=False).
  tests/fixtures/chat_templates/features.json  small templates, one Jinja feature each (filters, tests, methods,
                                               loops, scoping, whitespace control, errors), rendered by the
                                               environment transformers compiles templates in.

Every case stores the template (or, for the shared tokenizers, the folder whose template is read at test time: the
shared files are never copied), the inputs, and the output — or the error jinja2 raised: its message, the template
line (from the traceback jinja2 rewrites to template lines) and its kind (syntax / runtime / raised, raised being
raise_exception()).

Run: .venv/bin/python tests/reference/make_chat_template_fixtures.py
Needs transformers (tests/reference/requirements.txt) and jinja2 3.1.6, and the shared data in ../shared/data.
"""
import copy
import json
import os
from pathlib import Path

import jinja2
import transformers
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import (
    _compile_jinja_template,
    _normalize_chat_messages,
    render_jinja_template,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "tests" / "fixtures" / "chat_templates"

# Layerwise's fallback when a model has no template (engine/text/chat_template.cpp: chatml_fallback_template();
# the test checks both copies are the same text).
CHATML_FALLBACK = r"""{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for part in message['content'] if part['type'] == 'text' -%}
{{- part['text'] -}}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""

# ---------------------------------------------------------------------------------------------------------------
# Chat-template families, written for these fixtures after the published prompt formats.

TEMPLATES = {}

TEMPLATES["chatml"] = r"""{%- if messages[0]['role'] != 'system' %}
{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

TEMPLATES["chatml_compact"] = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TEMPLATES["llama3"] = r"""{{- bos_token }}
{%- set date_string = date_string | default("26 Jul 2024") %}
{%- if tools is not defined %}{% set tools = none %}{% endif %}
{#- The system message goes first, with the knowledge cut-off #}
{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\nToday Date: " ~ date_string ~ "\n\n" }}
{{- system_message ~ "<|eot_id|>" }}
{#- With tools, they are described in the first user turn #}
{%- if tools is not none %}
    {%- if messages | length == 0 %}
        {{- raise_exception("Tools need a first user message to go in!") }}
    {%- endif %}
    {%- set first = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' }}
    {{- "Answer with a JSON function call when a function helps:\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) ~ "\n\n" }}
    {%- endfor %}
    {{- first ~ "<|eot_id|>" }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role in ['tool', 'ipython'] %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping %}{{ message.content | tojson }}{% else %}{{ message.content }}{% endif %}
        {{- "<|eot_id|>" }}
    {%- elif 'tool_calls' in message %}
        {%- if message.tool_calls | length != 1 %}
            {{- raise_exception("Only one tool call per turn is supported!") }}
        {%- endif %}
        {%- set call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' ~ call.name ~ '", "parameters": ' ~ call.arguments | tojson ~ '}<|eot_id|>' }}
    {%- else %}
        {{- '<|start_header_id|>' ~ message.role ~ '<|end_header_id|>\n\n' ~ message.content | trim ~ '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

TEMPLATES["llama2"] = r"""{%- if messages[0]['role'] == 'system' -%}
    {%- set system_message = messages[0]['content'] -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set system_message = none -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
    {%- endif -%}
    {%- set content = message['content'] -%}
    {%- if loop.first and system_message is not none -%}
        {%- set content = '<<SYS>>\n' ~ system_message ~ '\n<</SYS>>\n\n' ~ content -%}
    {%- endif -%}
    {%- if message['role'] == 'user' -%}
        {{- bos_token ~ '[INST] ' ~ content | trim ~ ' [/INST]' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- ' ' ~ content | trim ~ ' ' ~ eos_token -}}
    {%- endif -%}
{%- endfor -%}
"""

TEMPLATES["gemma"] = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- set role = "model" if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""

# Relies on trim_blocks / lstrip_blocks alone for its layout.
TEMPLATES["phi3"] = r"""{% for message in messages %}
    {% if message['role'] in ['system', 'user', 'assistant'] %}
{{ '<|' ~ message['role'] ~ '|>' }}
{{ message['content'] }}<|end|>
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}
<|assistant|>
{% else %}
{{ eos_token }}
{% endif %}
"""

TEMPLATES["mistral_tools"] = r"""{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}
{%- set ns = namespace(index=0) %}
{%- for message in loop_messages %}
    {%- if not (message.role == "tool" or (message.tool_calls is defined and message.tool_calls)) %}
        {%- if (message["role"] == "user") != (ns.index % 2 == 0) %}
            {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
        {%- endif %}
        {%- set ns.index = ns.index + 1 %}
    {%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
        {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token }}
    {%- elif message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content|string + ", " }}
        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}
            {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
        {%- endif %}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""

TEMPLATES["documents"] = r"""{{- bos_token -}}
{% if documents %}
<|system|>Documents:
{% for doc in documents %}
[{{ loop.index }}] {{ doc.title | default('Untitled') }}: {{ doc.text | truncate(60) }}
{% endfor %}
{% endif %}
{%- for m in messages %}
<|{{ m.role }}|>{{ m.content }}
{%- endfor %}
{% if add_generation_prompt %}<|assistant|>{% endif %}
"""

TEMPLATES["macro_tools"] = r"""{%- macro render_param(name, spec, required, depth=0) -%}
{{ '  ' * depth }}- {{ name }} ({{ spec.type | default('any') }}{% if name in required %}, required{% endif %})
{%- if spec.description is defined %}: {{ spec.description }}{% endif %}

{% if spec.enum is defined %}{{ '  ' * (depth + 1) }}one of: {{ spec.enum | map('tojson') | join(', ') }}
{% endif %}
{%- if spec.properties is defined %}
{%- for key, sub in spec.properties | dictsort %}{{ render_param(key, sub, spec.required | default([]), depth + 1) }}{% endfor %}
{%- endif %}
{%- endmacro -%}
{%- macro render_tool(tool) -%}
### {{ tool.name | upper }}
{{ tool.description | default('(no description)') | wordcount }} words: {{ tool.description | default('') | title }}
{% for key, sub in tool.parameters.properties | dictsort %}{{ render_param(key, sub, tool.parameters.required | default([])) }}{% endfor %}
{%- endmacro -%}
{%- if tools %}
# Tools
{% for t in tools %}
{{ render_tool(t.function if t.function is defined else t) }}
{% endfor %}
{% endif %}
{%- for message in messages %}
{{ message.role | capitalize }}: {{ message.content if message.content is string else message.content | map(attribute='text') | select | join(' ') }}
{% endfor %}
{%- if add_generation_prompt %}Assistant:{% endif %}"""

# ---------------------------------------------------------------------------------------------------------------
# Conversations

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Zürich"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {
                "type": "object",
                "properties": {"b": {"type": "number"}, "a": {"type": "number", "description": "first"}},
                "required": ["a", "b"],
            },
            "return": {"type": "number"},
        },
    },
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

CONVERSATIONS = {
    "single_user": {"messages": [{"role": "user", "content": "Hello!"}]},
    "system_user": {"messages": [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]},
    "multi_turn": {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "  Tell me a joke.  "},
        ]
    },
    "no_system_multi": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ]
    },
    "unicode": {
        "messages": [
            {"role": "user", "content": "Grüße aus Zürich — «quotes» 'single' \"double\" \\ backslash\n\ttab 🎉 日本語"},
            {"role": "assistant", "content": "\n  Ça va? ß→SS, ﬁ ligature  \n"},
            {"role": "user", "content": "<b>html</b> & {{ not a template }} {% raw %}"},
        ]
    },
    "content_parts": {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe this image. "}]},
        ]
    },
    "tool_calls": {
        "tools": TOOLS,
        "messages": [
            SYSTEM,
            {"role": "user", "content": "What's the weather in Zürich?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call12345",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
             "content": '{"temperature": 21, "condition": "sunny"}'},
            {"role": "assistant", "content": "It is 21 °C and sunny in Zürich."},
        ],
    },
    "parallel_tools": {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "Add 1 and 2, and tell me the weather in Oslo."},
            {
                "role": "assistant",
                "content": "Let me check.",
                "reasoning_content": "Two independent calls.",
                "tool_calls": [
                    {"id": "callAAAAA", "type": "function",
                     "function": {"name": "add", "arguments": {"a": 1, "b": 2}}},
                    {"id": "callBBBBB", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "callAAAAA", "content": "3"},
            {"role": "tool", "tool_call_id": "callBBBBB", "content": "Rain, 9 °C"},
        ],
    },
    "null_fields": {
        "messages": [
            {"role": "user", "content": "Call it.", "name": None},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "callCCCCC", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}]},
            {"role": "tool", "tool_call_id": "callCCCCC", "content": "4"},
        ]
    },
    "reasoning": {
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "2+2 = 4.", "reasoning_content": "Simple arithmetic."},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "<think>\nAdd three and three.\n</think>\n\n3+3 = 6."},
        ]
    },
    "reasoning_last": {
        "messages": [
            {"role": "user", "content": "Think first: 5*5?"},
            {"role": "assistant", "content": "\n\n25", "thinking": "\nFive fives.\n"},
        ]
    },
    "not_alternating": {
        "messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    },
    "assistant_first": {
        "messages": [SYSTEM, {"role": "assistant", "content": "I speak first."}]
    },
    "documents": {
        "documents": [
            {"title": "Zürich", "text": "Zürich is the largest city in Switzerland and the capital of the canton of Zürich."},
            {"text": "A document without a title."},
        ],
        "messages": [{"role": "user", "content": "Summarise the documents."}],
    },
    "continue_last": {
        "messages": [
            {"role": "user", "content": "Write a haiku about rain."},
            {"role": "assistant", "content": "Soft rain on the roof  "},
        ]
    },
}

SPECIAL = {
    "chatml": {"eos_token": "<|im_end|>"},
    "chatml_compact": {"eos_token": "<|im_end|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama2": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
    "phi3": {"bos_token": "<s>", "eos_token": "<|endoftext|>"},
    "mistral_tools": {"bos_token": "<s>", "eos_token": "</s>"},
    "documents": {"bos_token": "<BOS>"},
    "macro_tools": {},
}

# (template, conversation, add_generation_prompt, extra variables, continue_final_message)
CHAT_PLAN = []
for name in ["chatml", "chatml_compact", "llama3", "llama2", "gemma", "phi3", "mistral_tools", "macro_tools"]:
    for conv in ["single_user", "system_user", "multi_turn", "no_system_multi", "unicode"]:
        for gen in (False, True):
            CHAT_PLAN.append((name, conv, gen, {}, False))
for name, conv in [
    ("llama2", "not_alternating"), ("gemma", "not_alternating"), ("mistral_tools", "not_alternating"),
    ("llama2", "assistant_first"), ("gemma", "content_parts"), ("chatml", "content_parts"),
    ("macro_tools", "content_parts"), ("llama3", "tool_calls"), ("llama3", "parallel_tools"),
    ("mistral_tools", "tool_calls"), ("macro_tools", "tool_calls"), ("chatml", "tool_calls"),
    ("documents", "documents"), ("documents", "single_user"), ("llama3", "reasoning"),
]:
    CHAT_PLAN.append((name, conv, True, {}, False))
CHAT_PLAN += [
    ("llama3", "system_user", True, {"date_string": "01 Jan 2025"}, False),
    ("chatml", "continue_last", False, {}, True),
    ("llama2", "continue_last", False, {}, True),
    ("gemma", "continue_last", False, {}, True),
    ("gemma", "continue_last", True, {}, True),  # transformers refuses both at once
]

SHARED_PLAN = [
    # (shared tokenizer folder, conversation, add_generation_prompt, extra variables, continue_final_message)
    ("tokenizers/qwen3", "single_user", False, {}, False),
    ("tokenizers/qwen3", "single_user", True, {}, False),
    ("tokenizers/qwen3", "single_user", True, {"enable_thinking": False}, False),
    ("tokenizers/qwen3", "system_user", True, {}, False),
    ("tokenizers/qwen3", "multi_turn", True, {}, False),
    ("tokenizers/qwen3", "unicode", False, {}, False),
    ("tokenizers/qwen3", "tool_calls", True, {}, False),
    ("tokenizers/qwen3", "parallel_tools", True, {}, False),
    ("tokenizers/qwen3", "reasoning", False, {}, False),
    ("tokenizers/qwen3", "reasoning", True, {"enable_thinking": True}, False),
    ("tokenizers/qwen3", "reasoning_last", False, {}, False),
    ("tokenizers/qwen3", "null_fields", True, {}, False),
    ("tokenizers/qwen3", "continue_last", False, {}, True),
    ("tokenizers/qwen3", "reasoning_last", False, {}, "reasoning_content"),
    ("tokenizers/mistral-v0.1", "single_user", False, {}, False),
    ("tokenizers/mistral-v0.1", "multi_turn", True, {}, False),
    ("tokenizers/mistral-v0.1", "content_parts", True, {}, False),
    ("tokenizers/mistral-v0.1", "unicode", False, {}, False),
]


def template_line(exc):
    """The template line of the innermost frame jinja2 mapped back to the template."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def outcome(fn):
    try:
        return {"expected": fn()}
    except jinja2.TemplateSyntaxError as e:
        return {"error": {"kind": "syntax", "message": e.message, "line": e.lineno}}
    except jinja2.TemplateError as e:
        kind = "raised" if type(e) is jinja2.exceptions.TemplateError else "runtime"
        return {"error": {"kind": kind, "message": str(e), "line": template_line(e)}}
    except (ValueError, TypeError) as e:
        line = template_line(e)
        if line is None:  # refused by transformers before rendering
            return {"error": {"kind": "input", "message": str(e), "line": None}}
        return {"error": {"kind": "runtime", "message": str(e), "line": line}}
    except Exception as e:  # noqa: BLE001 - anything else the template raised while rendering
        return {"error": {"kind": "runtime", "message": str(e), "line": template_line(e)}}


def chat_cases():
    cases = []
    for name, conv, gen, variables, cont in CHAT_PLAN:
        request = copy.deepcopy(CONVERSATIONS[conv])
        kwargs = dict(SPECIAL[name])
        kwargs.update(variables)

        def run():
            # apply_chat_template's path: normalise the messages (keys whose value is None are dropped), render
            rendered, _ = render_jinja_template(
                conversations=[_normalize_chat_messages(copy.deepcopy(request["messages"]))],
                tools=request.get("tools"),
                documents=request.get("documents"),
                chat_template=TEMPLATES[name],
                add_generation_prompt=gen,
                continue_final_message=cont,
                **kwargs,
            )
            return rendered[0]

        if cont and gen:
            result = {"error": {"kind": "input", "message": "continue_final_message and add_generation_prompt are not compatible", "line": None}}
        else:
            result = outcome(run)
        cases.append({"template": name, "special_tokens": SPECIAL[name], "conversation": conv,
                      "add_generation_prompt": gen, "variables": variables,
                      "continue_final_message": ("content" if cont is True else (cont or "")), **result})
    return cases


def shared_cases():
    cases = []
    tokenizers = {}
    for folder, conv, gen, variables, cont in SHARED_PLAN:
        if folder not in tokenizers:
            tokenizers[folder] = AutoTokenizer.from_pretrained(SHARED / folder)
        tok = tokenizers[folder]
        request = copy.deepcopy(CONVERSATIONS[conv])
        template = None if tok.chat_template is not None else CHATML_FALLBACK

        def run():
            return tok.apply_chat_template(
                copy.deepcopy(request["messages"]), tools=request.get("tools"), documents=request.get("documents"),
                add_generation_prompt=gen, continue_final_message=cont, chat_template=template, tokenize=False,
                **variables)

        cases.append({"shared": folder, "fallback": template is not None,
                      "special_tokens": tok.special_tokens_map, "conversation": conv,
                      "add_generation_prompt": gen, "variables": variables,
                      "continue_final_message": ("content" if cont is True else (cont or "")), **outcome(run)})
    return cases


# ---------------------------------------------------------------------------------------------------------------
# One feature per template. Contexts are shared by name.

CONTEXTS = {
    "none": {},
    "data": {
        "s": " Hello World ",
        "n": 7,
        "neg": -3,
        "f": 2.5,
        "big": 1e16,
        "nums": [3, 1, 2],
        "floats": [0.5, 1.25, 3.0],
        "d": {"b": 1, "a": 2, "c": None},
        "u": "Zürich ß café ÉCOLE",
        "nothing": None,
        "t": True,
        "names": ["Bob", "alice", "Carol", "bob"],
        "users": [
            {"name": "Ann", "age": 31, "role": "admin", "tags": ["x", "y"]},
            {"name": "bob", "age": 25},
            {"name": "Cid", "age": 31, "role": "user", "tags": []},
        ],
        "empty": [],
        "nested": {"a": {"b": [1, {"c": "deep"}]}},
        "text": "line one\nline two\n\nline four",
        "html": "<p>Hello &amp; <b>bye</b></p> <!-- note -->",
        "json_like": {"z": 1, "y": [1, 2.0, "three", True, None], "x": {"é": "ü", "q": "\"\\\n\t\u0001"}},
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "user", "content": [{"type": "text", "text": "part"}]},
        ],
    },
}

F = []  # (template, context name)


def feat(template, ctx="data"):
    F.append((template, ctx))


# --- output, literals and printing
for t in [
    "{{ 'a' }}{{ \"b\" }}{{ 'x' 'y' }}",
    "{{ 42 }} {{ -7 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }}",
    "{{ 1.5 }} {{ 1e3 }} {{ 2.0 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 123456789.0 * 10 }}",
    "{{ true }} {{ false }} {{ none }} {{ True }} {{ None }}",
    "{{ [1, 'a', none, true, 1.5] }} {{ (1,) }} {{ () }} {{ (1, 'b') }} {{ {'k': [1, {'n': none}]} }}",
    "{{ ['it\\'s', \"say \\\"hi\\\"\", 'both \\' \"', 'nl\\n', 'tab\\t', 'bs\\\\', 'é', '\\x07'] }}",
    "{{ 'esc: \\x41\\u00e9\\U0001F600\\101\\d\\q' }}",
    "{{ f }} {{ big }} {{ nothing }} {{ d }} {{ nums }} {{ users[0] }}",
    "{{ undefined_thing }}|{{ d.missing }}|{{ users[9] }}",
    "{{ 'a', 'b' }}",
    "{{ u }} {{ u | length }} {{ u[0] }} {{ u[-1] }} {{ u[2:6] }} {{ u[::-1] }}",
    "{% print 'p', n %}",
]:
    feat(t)

# --- whitespace control, trim_blocks, lstrip_blocks
for t in [
    "a\n{% if true %}\nb\n{% endif %}\nc\n",
    "a\n  {% if true %}\n  b\n  {% endif %}\n  c",
    "  {{ 'x' }}\n  {% if true %}y{% endif %}  \n",
    "a  {%- if true -%}  b  {%- endif -%}  c",
    "a\n\n  {{- 'b' -}}  \n\nc",
    "a\n  {%+ if true %}b{% endif +%}\nc",
    "{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n",
    "{% for i in [1, 2] -%}\n  {{ i }}\n{%- endfor %}",
    "x {# a comment #} y\n  {# lstripped #}\nz {#- trims -#}  w",
    "{% raw %}{{ not evaluated }}{% endraw %} {%- raw %} {% also %} {% endraw -%} done",
    "a\r\nb\rc\n",
    "trailing newline kept once\n\n",
    "{% if true %}  \t\n{% endif %}end",
    "  {% if true %}keep{% endif %} \n  {%- if true %} x{% endif %}",
    "{{- 'a' }}  \n  {{ 'b' -}}  \n  c",
    "line1\n    {% set x = 1 %}\nline2 {{ x }}",
    "{% macro m() %}\n  body\n{% endmacro %}[{{ m() }}]",
]:
    feat(t, "none")

# --- arithmetic, comparison, logic
for t in [
    "{{ 7 + 3 }} {{ 7 - 10 }} {{ 7 * 3 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }}",
    "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ 'ab' * 0 }}",
    "{{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ (1,) + (2,) }} {{ 'a' ~ 1 ~ none ~ undefined_x ~ [1] }}",
    "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 3 > 4 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 1 != '1' }} {{ none == none }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'b' in {'b': 1} }} {{ 'z' not in 'abc' }}",
    "{{ true and 'x' }} {{ 0 or 'y' }} {{ '' or [] }} {{ not none }} {{ not 0 and 1 }} {{ none or false }}",
    "{{ 'yes' if n > 5 else 'no' }} {{ 'a' if false }}| {{ 'x' if n is odd else 'y' if n is even }}",
    "{{ -n }} {{ +f }} {{ -(nums | length) }} {{ - 2 ** 2 }} {{ (1 + 2) * 3 }} {{ 1 + 2 * 3 }} {{ 2 ** 3 ** 2 }}",
    "{{ 10 / 4 * 2 }} {{ 1 - 2 - 3 }} {{ 'ab' ~ 'c' + 'd' }} {{ n % 2 == 1 }}",
    "{{ undefined_x == undefined_y }} {{ undefined_x != 1 }} {{ undefined_x is none }} {{ none is none }}",
    "{{ 1e300 * 1e300 }} {{ -1e300 * 1e300 }} {{ 0.1 * 3 }} {{ 1 / 3 }} {{ 2 / 3 * 3 }} {{ 1e22 }} {{ 1.5e-7 }}",
]:
    feat(t)

# --- variables, scoping, namespace
for t in [
    "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}",
    "{% set x = 1 %}{% for i in [1, 2] %}{% if i == 2 %}{{ x }}{% endif %}{% set x = i + 5 %}{% endfor %}",
    "{% if true %}{% set z = 5 %}{% endif %}{{ z }}",
    "{% set ns = namespace(count=0, items=[]) %}{% for i in [1, 2, 3] %}{% set ns.count = ns.count + i %}{% endfor %}{{ ns.count }} {{ ns.items }}",
    "{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 3, 4 %}{{ c }}",
    "{% set ns = namespace(a=1) %}{% set ns.a, ns.b = 5, 6 %}{{ ns.a }}{{ ns.b }}",
    "{% set block %}Hello {{ 'World' }}{% endset %}[{{ block }}]",
    "{% set block | upper | trim %}  shout  {% endset %}[{{ block }}]",
    "{% with a = 3, b = a %}{{ a }}{{ b }}{% endwith %}{{ a is defined }}",
    "{% set messages = messages[1:] %}{{ messages | length }}",
    "{% set d2 = dict(a=1, b=2) %}{{ d2 }} {{ dict([('x', 1)]) }} {{ dict(d, z=0) }} {{ dict.fromkeys(['p', 'q'], 0) }}",
    "{% set ns = namespace(d) %}{{ ns.a }}{{ ns.b }} {{ namespace(x=1) }}",
    "{% for i in [1] %}{% set inner = 'in' %}{% endfor %}{{ inner is defined }}",
    "{% set ns = namespace(v='') %}{% for m in messages if m.content is string %}{% set ns.v = ns.v ~ m.role[0] %}{% endfor %}{{ ns.v }}",
]:
    feat(t)

# --- for loops
for t in [
    "{% for m in messages %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }} {% endfor %}",
    "{% for i in nums %}{{ loop.previtem }}<{{ i }}>{{ loop.nextitem }}|{% endfor %}",
    "{% for i in range(5) %}{{ loop.cycle('a', 'b', 'c') }}{% endfor %} {% for i in [1, 1, 2, 2, 1] %}{{ loop.changed(i) }} {% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for c in 'abc' %}{{ c }}.{% endfor %}",
    "{% for x in empty %}never{% else %}empty!{% endfor %} {% for x in undefined_seq %}never{% else %}undef!{% endfor %}",
    "{% for i in nums if i > 1 %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %}",
    "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
    "{% for i in [1, 2] %}{% break %}{% else %}else-runs{% endfor %}|{% for i in [1] %}x{% else %}no{% endfor %}",
    "{% for i in range(5) %}{% with j = i * 2 %}{% if j > 4 %}{% break %}{% endif %}{{ j }}{% endwith %}{% endfor %}|{% for i in range(4) %}{% filter upper %}a{% if i is odd %}{% continue %}{% endif %}b{% endfilter %}{% endfor %}",
    "{% for a, b in [(1, 2), [3, 4], 'xy'] %}{{ a }}{{ b }} {% endfor %}",
    "{% for row in [[1, 2], [3]] %}{% set outer = loop %}{% for c in row %}{{ outer.index }}.{{ loop.index }} {% endfor %}{% endfor %}",
    "{% for item in [{'n': 'a', 'kids': [{'n': 'b', 'kids': []}, {'n': 'c', 'kids': [{'n': 'd', 'kids': []}]}]}] recursive %}{{ item.n }}{{ loop.depth }}({{ loop(item.kids) }}){% endfor %}",
    "{% for i in range(3, 0, -1) %}{{ i }}{% endfor %} {{ range(2, 8, 3) | list }} {{ range(0) | list }}",
    "{% for m in messages[::-1] %}{{ m.role[0] }}{% endfor %} {% for m in messages[1:3] %}{{ m.role }},{% endfor %}",
    "{% for i in nums | sort %}{{ i }}{% endfor %}{{ loop is defined }}",
]:
    feat(t)

# --- macros and call blocks
for t in [
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cid') }} {{ greet() }}|",
    "{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}",
    "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1) | int }}{% endif %}{% endmacro %}{{ fact(6) }}",
    "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inside {{ n }}{% endcall %}",
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) each([1, 2]) %}<{{ x }}>{% endcall %}",
    "{% macro m(a, b=a * 2) %}{{ a }},{{ b }}{% endmacro %}{{ m(3) }} {{ m.name }} {{ m.arguments }}",
    "{% set y = 1 %}{% macro m() %}{{ y }}{% endmacro %}{{ m() }}{% set y = 2 %}{{ m() }}",
    "{% filter upper %}shout {{ 'this' }}{% endfilter %} {% filter replace('a', 'o') | title %}banana bar{% endfilter %}",
]:
    feat(t)

# --- filters
for t in [
    "{{ s | trim }}|{{ s | trim('H ') }}|{{ '  x  ' | trim }}|{{ 'xxhixx' | trim('x') }}",
    "{{ s | upper }} {{ s | lower }} {{ u | upper }} {{ u | lower }} {{ 'hello wORLD' | capitalize }} {{ u | capitalize }}",
    "{{ 'hello big-world (x) [y]' | title }} {{ \"it's o'neil\" | title }} {{ u | title }}",
    "{{ nums | length }} {{ d | length }} {{ 'héllo' | length }} {{ nums | count }} {{ undefined_x | length }}",
    "{{ undefined_x | default('dflt') }} {{ '' | default('empty', true) }} {{ 0 | d('zero', boolean=true) }} {{ none | default('x') }} {{ n | default(1) }}",
    "{{ names | join(', ') }} {{ nums | join }} {{ users | join('|', attribute='name') }} {{ [1, none, 'a'] | join('-') }}",
    "{{ d | items | list }} {{ undefined_x | items | list }} {{ d.items() | list }} {{ d.items() }} {{ d.keys() }} {{ d.values() }}",
    "{{ users | selectattr('role') | map(attribute='name') | list }} {{ users | rejectattr('role') | map(attribute='name') | list }}",
    "{{ users | selectattr('age', 'equalto', 31) | map(attribute='name') | join(',') }} {{ users | selectattr('age', '>', 26) | list | length }}",
    "{{ users | selectattr('role', 'defined') | list | length }} {{ users | selectattr('role', 'undefined') | list | length }}",
    "{{ messages | selectattr('role', 'in', ['user', 'system']) | map(attribute='role') | list }}",
    "{{ nums | select('odd') | list }} {{ nums | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ nums | select('greaterthan', 1) | list }}",
    "{{ names | map('upper') | list }} {{ users | map(attribute='role', default='guest') | list }} {{ users | map(attribute='tags.0', default='-') | list }}",
    "{{ nested | map(attribute='x') | list }} {{ [[1, 2], [3]] | map('length') | list }} {{ ['1', '2x'] | map('int') | list }}",
    "{{ nums | first }} {{ nums | last }} {{ 'abc' | first }} {{ 'abc' | last }} {{ empty | first }}|{{ d | first }}",
    "{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'abc' | replace('', '-') }} {{ u | replace('ü', 'ue') }}",
    "{{ 42 | string }} {{ none | string }} {{ [1, 'a'] | string }} {{ 1.0 | string }} {{ true | string | upper }}",
    "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(-1) }} {{ 3.9 | int }} {{ '0x1A' | int(0, 16) }} {{ '1_000' | int }} {{ ' 12 ' | int }} {{ true | int }} {{ none | int }}",
    "{{ '4.5' | float }} {{ 'x' | float }} {{ 3 | float }} {{ '1e3' | float }} {{ 'inf' | float }} {{ '-nan' | float }}",
    "{{ 'abc' | list }} {{ d | list }} {{ (1, 2) | list }} {{ range(3) | list }}",
    "{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.5 | round(0, 'floor') }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ 1234.5678 | round(-2) }} {{ 15 | round(-1) }} {{ 25 | round(-1) }} {{ -2.5 | round }}",
    "{{ -3 | abs }} {{ neg | abs }} {{ -2.5 | abs }} {{ names | unique | list }} {{ names | unique(case_sensitive=true) | list }} {{ users | unique(attribute='age') | map(attribute='name') | list }}",
    "{{ names | sort }} {{ names | sort(case_sensitive=true) }} {{ names | sort(reverse=true) }} {{ users | sort(attribute='age') | map(attribute='name') | list }} {{ users | sort(attribute='age,name', reverse=true) | map(attribute='name') | list }}",
    "{{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ {'b': 2, 'A': 3, 'a': 1} | dictsort(true) }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }}",
    "{{ nums | min }} {{ nums | max }} {{ names | min }} {{ names | max }} {{ names | max(case_sensitive=true) }} {{ users | max(attribute='age') }} {{ empty | min }}|",
    "{{ nums | sum }} {{ floats | sum }} {{ users | sum(attribute='age') }} {{ nums | sum(start=10) }}",
    "{{ nums | reverse | list }} {{ 'abc' | reverse }} {{ u | reverse }} {{ (1, 2) | reverse | list }}",
    "{{ users | groupby('age') | list }} {% for age, group in users | groupby('age') %}{{ age }}:{{ group | map(attribute='name') | join('+') }} {% endfor %}",
    "{{ nums | batch(2) | list }} {{ nums | batch(2, 0) | list }} {{ range(7) | slice(3) | list }} {{ range(5) | slice(2, 'x') | list }}",
    "{{ text | indent }}|{{ text | indent(2, true) }}|{{ text | indent('> ', blank=true) }}|{{ 'one' | indent(first=true) }}",
    "{{ 'foo bar baz qux' | truncate(9) }}|{{ 'foo bar baz qux' | truncate(9, true) }}|{{ 'foo bar baz qux' | truncate(11) }}|{{ 'foo bar baz qux' | truncate(11, false, '..', 0) }}|{{ 'short' | truncate(3, leeway=0, end='') }}",
    "{{ 'hello world  and  more' | wordcount }} {{ html | striptags }} {{ '<a href=\"x\">&lt;ok&gt;</a>' | striptags }}",
    "{{ '<b>\"x\" & \\'y\\'</b>' | e }} {{ '<i>' | escape }} {{ '<b>' | safe }} {{ '<b>' | forceescape }}",
    "{{ 'abc' | center(9) }}|{{ 'abcd' | center(9) }}|{{ 'ab' | center }}|",
    "{{ 1500 | filesizeformat }} {{ 1 | filesizeformat }} {{ 1023 | filesizeformat }} {{ 2048 | filesizeformat(true) }} {{ 3000000000 | filesizeformat }}",
    "{{ '%s is %d years and %.2f%%' | format('Ann', 31, 2.5) }} {{ '%(a)s-%(b)05d' | format(a='x', b=42) }}",
    "{{ 'a/b c&d' | urlencode }} {{ {'q': 'a b', 'n': 1} | urlencode }} {{ [('k', 'v/w')] | urlencode }}",
    "{{ users[0] | attr('name') }}|{{ d | attr('items') is defined }}|{{ 'x' | attr('upper') is callable }}",
    "{{ 'x' | pprint }} {{ nums | pprint }}",
]:
    feat(t)

# --- tojson (transformers' own: ensure_ascii=False, no sorting, no HTML escaping)
for t in [
    "{{ json_like | tojson }}",
    "{{ json_like | tojson(indent=2) }}",
    "{{ json_like | tojson(indent=0) }}",
    "{{ json_like | tojson(indent='\\t') }}",
    "{{ json_like | tojson(sort_keys=true) }}",
    "{{ json_like | tojson(ensure_ascii=true) }}",
    "{{ json_like | tojson(separators=(',', ':')) }}",
    "{{ '<script>&' | tojson }} {{ 1.0 | tojson }} {{ 1e16 | tojson }} {{ nothing | tojson }} {{ (1, 2) | tojson }} {{ [] | tojson(indent=2) }} {{ {} | tojson(indent=2) }}",
    "{{ {1: 'int', 2.5: 'float', true: 'bool', none: 'none'} | tojson }}",
    "{{ users | tojson(indent=4) }}",
    "{{ messages[2].tool_calls[0].function.arguments | tojson }}",
]:
    feat(t)

# --- tests
for t in [
    "{{ x is defined }} {{ n is defined }} {{ x is undefined }} {{ nothing is none }} {{ nothing is not none }} {{ d.c is none }} {{ d.zz is defined }}",
    "{{ t is boolean }} {{ 1 is boolean }} {{ t is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }}",
    "{{ n is integer }} {{ t is integer }} {{ f is float }} {{ n is number }} {{ t is number }} {{ '1' is number }}",
    "{{ s is string }} {{ n is string }} {{ d is mapping }} {{ nums is mapping }} {{ ns is mapping }}",
    "{{ nums is iterable }} {{ s is iterable }} {{ d is iterable }} {{ n is iterable }} {{ x is iterable }} {{ nothing is iterable }}",
    "{{ nums is sequence }} {{ s is sequence }} {{ d is sequence }} {{ n is sequence }} {{ x is sequence }} {{ d.keys() is sequence }}",
    "{{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 2.0 is even }}",
    "{{ n is eq 7 }} {{ n is equalto 7 }} {{ n is ne 7 }} {{ n is gt 3 }} {{ n is ge 7 }} {{ n is lt 3 }} {{ n is le 7 }} {{ n is greaterthan 1 }} {{ n is lessthan 1 }}",
    "{{ 'a' is in 'cat' }} {{ 2 is in nums }} {{ 'Abc' is lower }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ '1' is upper }}",
    "{{ range is callable }} {{ raise_exception is callable }} {{ n is callable }} {{ s.upper is callable }} {{ namespace is callable }}",
    "{{ none is sameas none }} {{ true is sameas true }} {{ 1 is sameas 1 }} {{ nums is sameas nums }} {{ nums is sameas [3, 1, 2] }}",
    "{{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ 'x' is escaped }}",
    "{% if messages[0].content is string and messages[3].content is not string %}ok{% endif %}",
]:
    feat(t)

# --- str methods
for t in [
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\\n\\t a \\u3000'.strip() }}|{{ 'ab'.strip(none) }}",
    "{{ s.startswith(' He') }} {{ s.endswith('d ') }} {{ s.startswith(('x', ' ')) }} {{ 'abc'.startswith('b', 1) }} {{ 'abc'.endswith('b', 0, 2) }}",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a b  '.rsplit(none, 1) }} {{ ''.split() }} {{ ''.split(',') }}",
    "{{ text.splitlines() }} {{ 'a\\r\\nb\\rc\\n'.splitlines(true) }}",
    "{{ 'hello world'.title() }} {{ \"they're bill's\".title() }} {{ 'ÉCOLE ßtraße'.lower() }} {{ 'straße'.upper() }} {{ 'hELLO'.swapcase() }} {{ 'hello'.capitalize() }}",
    "{{ 'aaa'.replace('a', 'b', 1) }} {{ 'banana'.find('an') }} {{ 'banana'.rfind('an') }} {{ 'banana'.find('x') }} {{ 'banana'.count('a') }} {{ 'banana'.index('n') }} {{ 'héllo wörld'.find('w') }} {{ 'banana'.find('a', 2) }}",
    "{{ '-'.join(['a', 'b']) }} {{ ''.join('xyz') }} {{ ', '.join(d) }}",
    "{{ 'ab'.center(6, '*') }} {{ 'ab'.ljust(5, '.') }} {{ 'ab'.rjust(5) }} {{ '42'.zfill(5) }} {{ '-42'.zfill(5) }}",
    "{{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'abc'.partition('x') }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }}",
    "{{ '123'.isdigit() }} {{ '12a'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'ab1'.isalnum() }} {{ ' \\t'.isspace() }} {{ 'Title Case'.istitle() }} {{ 'abc'.islower() }} {{ 'ABC'.isupper() }} {{ ''.isdigit() }}",
    "{{ '{} and {}'.format('a', 'b') }} {{ '{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='Ann') }} {{ '{:>5}|{:<4}|{:^7}|'.format('r', 'l', 'c') }} {{ '{:05.2f} {:,} {:x} {:+d}'.format(3.14159, 1234567, 255, 5) }} {{ '{0[0]} {0[1]}'.format(nums) }} {{ '{{literal}}'.format() }}",
    "{{ '{!r} {!s}'.format('q', 'q') }} {{ '{:.3}'.format(1.0) }} {{ '{:.1%}'.format(0.256) }} {{ '{:e}'.format(12345.678) }} {{ '{:g}'.format(0.00001) }} {{ '{:*^9}'.format('mid') }}",
    "{{ ('%s|%5s|%-5s|%r' % ('a', 'b', 'c', 'd')) }} {{ '%d %i %05d %+d %x %X %o %#x' % (1, 2, 3, 4, 255, 255, 8, 255) }} {{ '%.3f %e %g %10.2f' % (3.14159, 1234.5, 0.0001, 2.5) }} {{ 'solo %s' % 'x' }} {{ '%c%c' % (65, 'b') }}",
    "{{ u.upper() }} {{ u.lower() }} {{ u.title() }} {{ u.swapcase() }} {{ u.casefold() }}",
]:
    feat(t)

# --- dict and list methods, indexing, slicing
for t in [
    "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'fb') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.copy() }}",
    "{{ d['a'] }} {{ d.a }} {{ nested.a.b[1].c }} {{ nested['a']['b'][0] }} {{ users[0].tags[-1] }} {{ users.0.name }} {{ nums[-1] }}",
    "{{ nums[1:] }} {{ nums[:-1] }} {{ nums[::2] }} {{ nums[::-1] }} {{ nums[5:] }} {{ nums[-100:100] }} {{ nums[2:0:-1] }} {{ 'hello'[1:4] }} {{ 'hello'[::-2] }}",
    "{{ nums.index(1) }} {{ nums.count(3) }} {{ (1, 2, 1).count(1) }} {{ nums.copy() }}",
    "{{ d['missing'] }}|{{ d.items is callable }}|{{ nums.append }}|{{ d.update is defined }}|{{ d.__class__ }}|{{ d._x is defined }}",
    "{% set m = messages[2] %}{{ m.tool_calls[0].function.name }} {{ m['tool_calls'][0]['function']['arguments']['x'] }} {{ 'tool_calls' in m }} {{ 'tool_calls' in messages[0] }}",
    "{{ messages[0].content.text is defined }} {{ messages[3].content[0].text }} {{ messages[-1]['content'][0]['type'] }}",
    "{{ users | map(attribute='name') | map('lower') | select('ne', 'bob') | list }}",
    "{{ (users | selectattr('role', 'eq', 'admin') | first).name }} {{ (messages | selectattr('role', 'equalto', 'user') | list | last).content }}",
]:
    feat(t)

# --- globals and generators
for t in [
    "{{ range(3) | list }} {{ range(1, 4) | sum }} {% for i in range(2) %}{{ i }}{% endfor %}",
    "{% set c = cycler('odd', 'even') %}{{ c.next() }} {{ c.next() }} {{ c.next() }} {{ c.current }}{% set j = joiner(' | ') %} {% for x in 'ab' %}{{ j() }}{{ x }}{% endfor %}",
    "{% set g = nums | select('odd') %}{{ g | list }}|{{ g | list }}",
    "{% set g = nums | map('string') %}{% if g %}truthy-even-if-empty{% endif %} {{ empty | select | list }} {% if empty | select %}gen-truthy{% endif %}",
    "{% set r = nums | reverse %}{{ r | list }} then {{ r | list }}",
    "{% if 'x' is defined %}{% set raised = false %}{% endif %}{{ raise_exception is defined }}",
]:
    feat(t)

# --- errors: undefined, types, raise_exception, syntax
for t in [
    "line1\n{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}",
    "{% for m in messages %}\n{% if m.role == 'assistant' %}\n{{ raise_exception('Assistant at index ' ~ loop.index0) }}\n{% endif %}\n{% endfor %}",
    "{{ undefined_x.attr }}",
    "{{ d.missing.deeper }}",
    "{{ nums[10].x }}",
    "{{ nothing.x.y }}",
    "{{ undefined_x + 1 }}",
    "{{ 1 + undefined_x }}",
    "{{ 'a' + 1 }}",
    "{{ 1 + 'a' }}",
    "{{ [1] + 'a' }}",
    "{{ 'a' - 'b' }}",
    "{{ 1 / 0 }}",
    "{{ 1 // 0 }}",
    "{{ 1.5 / 0 }}",
    "{{ 1 < 'a' }}",
    "{{ nums < 'a' }}",
    "{{ undefined_x < 1 }}",
    "{{ undefined_x() }}",
    "{{ n() }}",
    "{% for x in 42 %}{% endfor %}",
    "{{ 'x' in 42 }}",
    "{{ 1 in 'abc' }}",
    "{{ nums.append(4) }}",
    "{{ d.update({}) }}",
    "{% set x = 1 %}{% set x.y = 2 %}",
    "{% set ns = namespace() %}{% set ns._private = 1 %}",
    "{{ namespace(_x=1) }}",
    "{% for a, b in [(1, 2, 3)] %}{% endfor %}",
    "{% for a, b in [(1,)] %}{% endfor %}",
    "{{ 'abc'.nomethod() }}",
    "{{ -nums | length }}",
    "{{ d | items | last }}",
    "{{ nums | map('upper') | list }}",
    "{{ undefined_x | tojson }}",
    "{{ ns | tojson }}",
    "{{ {(1, 2): 'tuple key'} | tojson }}",
    "{{ {[1]: 2} }}",
    "{{ 'a' | items | list }}",
    "{{ range(200000) | length }}",
    "{{ 'abc'[1:2:0] }}",
    "{{ d[1:2] }}",
    "{{ 'x'.join([1]) }}",
    "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}",
    "{% macro m(a) %}{% endmacro %}{{ m(b=2) }}",
    "{{ ('a' if false).upper() }}",
    "{{ (nums | first).missing.x }}",
    "{{ '%d' % 'x' }}",
    "{{ '%s %s' % ('a',) }}",
    "{{ '%s' % ('a', 'b') }}",
    "{{ '{} {}'.format('a') }}",
    "{{ 'abc'.index('z') }}",
    "{{ 'a,b'.split('') }}",
    "{{ nums.index(99) }}",
    "{{ -'a' }}",
    "{{ 'ab' * 'c' }}",
    "{{ 'ab' * 1.5 }}",
    "{{ nums | join(attribute='x') }}",
    "{{ none | abs }}",
    "{{ users | sort(attribute='role') | list }}",
    "{{ 'x' | round }}",
]:
    feat(t)

# --- syntax errors
for t in [
    "{% if true %}never closed",
    "{% for x in y %}{% endif %}",
    "{% endfor %}",
    "{% unknowntag %}",
    "{{ 1 + }}",
    "{{ (1, 2 }}",
    "{{ [1, 2) }}",
    "{{ 'unterminated }}",
    "{{ x | nosuchfilter }}",
    "{{ x is nosuchtest }}",
    "line1\nline2\n{{ a.b. }}",
    "{% set 1 = 2 %}",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{# comment never closed",
    "{% raw %} raw never closed",
    "{{ x is defined is defined }}",
    "{{ x !! }}",
    "{% for x in %}{% endfor %}",
    "{{ }}",
    "{% if %}{% endif %}",
    "{% else %}",
    "{% for i in [1] %}{% else %}{% else %}{% endfor %}",
    "{% if x %}{% elif %}{% endif %}",
    "{{ 'a' ~ }}",
    "{{ f(1, a=2, 3) }}",
    "{% set x %}unclosed set block",
]:
    feat(t, "none")

# --- soft frames: an unknown filter inside an if only fails when it runs
for t in [
    "{% if false %}{{ x | nosuchfilter }}{% endif %}ok",
    "{% if true %}{{ x | nosuchfilter }}{% endif %}",
    "{{ (x | nosuchfilter) if false else 'fine' }}",
]:
    feat(t, "none")


# --- lexer corners and line numbers
for t in [
    "{{ '}}' }} {{ \"{%\" }} {{ {'a': {'b': 1}} }} {{ {'a': 1}['a'] }}",
    "{{-1}}|{{ 1-1 }}|{{ 1 -1 }}",
    "a {#- trim left #} b {# keep -#}   c {#+ plus #} d",
    "{%- raw -%}  {{ x }}  {%- endraw -%}  |",
    "x\n  {% raw %}\n  y\n  {% endraw %}\nz",
    "{{ 'multi\nline' }}|{{ \"tab\tin\" }}",
    "{% set x = [\n  1,\n  2,\n] %}{{ x }}",
    "{% for i in [1, 2] %}{{ i }}{%- if not loop.last %}, {% endif %}{% endfor %}",
    "{{ (1, 2)[0] }} {{ [[1, 2], [3]][0][1] }} {{ 'abc'[1] }} {{ {'k': 'v'}.k }}",
    "{{ x.0 }}{{ nums.0 }}{{ users.1.name }}",
    "{% if true %}\n\n{% endif %}\n",
    "{% if true -%}\n\n   x\n{%- endif %}",
    "{{ \"\\u2028\\u00a0\\u200b\" | tojson }} {{ [\"\\u2028\", \"\\u00ad\", \"\\x7f\", \"\\x85\"] }}",
    "{{ 'a' ~ 'b' if true else 'c' }} {{ 1 if none is none }} {{ 'x' if [] else 'y' }}",
    "{{ messages | length > 2 and messages[-1].role == 'user' }}",
]:
    feat(t)

for t in [
    "{%- for m in messages %}\n  {%- if m.role == 'user' %}\n    {{- m.content }}\n  {%- elif m.role == 'assistant'\n        and m.content.missing.x %}\n  {%- endif %}\n{%- endfor %}",
    "{%- macro bad(x) %}\nok\n{{ x.nope.deeper }}\n{%- endmacro %}\nbefore\n{{ bad(messages[0]) }}",
    "{% set total = 0 %}\n{% for i in nums\n     if i.missing.x %}\n{% endfor %}",
    "{{ 1 +\n   2 +\n   undefined_x.attr }}",
    "{% set v = nums %}\n\n{% set w = v | map('nosuchfilter') | list %}",
    "{%- set a = 1 %}\n{%- set b = a + 'x' %}",
    "text\n{# comment\nover\nlines #}\n{{ undefined_x.y }}",
    "{{- 'a' }}\n\n\n   {{- undefined_x.y }}",
    "{% raw %}\n\n{% endraw %}{{ undefined_x.y }}",
    "{% macro outer() %}{{ inner() }}{% endmacro %}\n{% macro inner() %}\n{{ raise_exception('from inner') }}\n{% endmacro %}\n{{ outer() }}",
    "{% for m in messages %}{% if loop.index == 3 %}\n{{ m.content.upper() }} {{ m.tool_calls[0].function.missing.x }}\n{% endif %}{% endfor %}",
    "{% if messages[10].role == 'x' %}{% endif %}",
    "{% if undefined_x.role == 'x' %}{% endif %}",
    "line 1\n{% set x = {'a': 1,\n  'b': undefined_x.c} %}",
]:
    feat(t)

# --- Undefined through filters and tests, generators, views
for t in [
    "[{{ undefined_x | upper }}][{{ undefined_x | trim }}][{{ undefined_x | join(',') }}][{{ undefined_x | list }}][{{ undefined_x | first }}][{{ undefined_x | string }}][{{ undefined_x | length }}]",
    "[{{ undefined_x | default(undefined_y) }}][{{ undefined_x | select | list }}][{{ undefined_x | map('upper') | list }}][{{ undefined_x | sort }}][{{ undefined_x | unique | list }}][{{ undefined_x | reverse | list }}]",
    "{{ undefined_x is sequence }} {{ undefined_x is iterable }} {{ undefined_x is mapping }} {{ undefined_x is string }} {{ undefined_x is number }} {{ undefined_x is callable }}",
    "{{ 'a' in undefined_x }} {{ undefined_x in [1] }} {{ undefined_x == none }} {{ (undefined_x or 'fb') }} {{ (undefined_x and 'x') }}",
    "{% if d.items() %}views-truthy{% endif %} {% if {}.items() %}no{% else %}empty-view-falsy{% endif %} {{ d.keys() | length }} {{ 'a' in d.keys() }} {{ ('a', 2) in d.items() }} {{ d.values() | list | last }}",
    "{{ d.items() | first }} {{ d.items() | last }} {{ d.keys() | sort }} {{ d.values() | select('none') | list }}",
    "{{ nums | map('string') | join('-') }} {{ (nums | select('odd') | first) }} {{ nums | select('odd') | min }}",
    "{% set it = nums | reverse %}{% for x in it %}{{ x }}{% endfor %}|{% for x in it %}{{ x }}{% endfor %}|{{ it | list }}",
    "{{ nums | sort | first }} {{ names | sort | last }} {{ nums | reverse | first }}",
    "{{ dict(a=1) == {'a': 1} }} {{ [1, 2] == (1, 2) }} {{ (1, 2) == (1, 2) }} {{ {'a': [1]} == {'a': [1]} }} {{ 1 == true }} {{ 0 == false }} {{ '' == none }}",
]:
    feat(t)

# --- transformers' extras: generation blocks, strftime_now, raise_exception text, dict global
for t in [
    "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}<{{ m.content }}>{% endgeneration %}{% else %}[{{ m.role }}]{% endif %}{% endfor %}",
    "{{ strftime_now('%Y') | length }} {{ strftime_now('%Y-%m-%d') | length }} {{ strftime_now('%%') }} [{{ strftime_now('') }}] {{ strftime_now('%d %B %Y') is string }}",
    "{% block body %}in block {{ n }}{% endblock %} after",
    "{{ raise_exception(42) }}",
    "{{ raise_exception(nums) }}",
    "{{ dict() }} {{ dict(d) }} {{ dict([['k', 'v']]) | tojson }} {{ dict is callable }}",
]:
    feat(t)


# --- printf-style %, str.format specs, Unicode case rules
for t in [
    "{{ \"%s\" % none }}|{{ \"%5.1f|%-6d|%+.2e\" % (3.14159, 42, 12345.678) }}|{{ '%x' % -255 }}|{{ '%#o' % 8 }}|{{ '%%' % () }}|{{ '%(a)s' % {'a': 1} }}|{{ 'abc' % {} }}",
    "{{ 'abc %s' % [1,2] }}|{{ 'abc %s' % ((1,2),) }}|{{ '%r' % 'x' }}|{{ '%a' % 'é' }}|{{ '%5s|' % 'é' }}|{{ '%.1s' % 'abc' }}|{{ '%03d' % -5 }}|{{ '% d' % 5 }}|{{ '%i' % 3.9 }}|{{ '%e' % 0 }}|{{ '%g' % 1e20 }}|{{ '%G' % 1e-20 }}",
    "{{ '{:>10.3f}'.format(3.14159) }}|{{ '{:,.2f}'.format(1234567.891) }}|{{ '{:08.3f}'.format(-3.14159) }}|{{ '{:b}'.format(5) }}|{{ '{:#x}'.format(255) }}|{{ '{:c}'.format(65) }}|{{ '{:%}'.format(0.5) }}|{{ '{:.0f}'.format(2.5) }}",
    "{{ '{:g}'.format(1e20) }}|{{ '{:.3g}'.format(1234.5) }}|{{ '{:n}'.format(1234) }}|{{ '{}'.format(none) }}|{{ '{!a}'.format('é') }}|{{ '{x[k]}'.format(x={'k': 1}) }}|{{ '{:5}|{:<5}|{:^5}'.format(1, 2, 3) }}|{{ '{:+.1f}'.format(-0.0) }}|{{ '{:.2}'.format('abc') }}",
    "{{ '{:.2}'.format(3.14159) }}|{{ '{:.1}'.format(0.05) }}|{{ '{:.5}'.format(100.0) }}|{{ '{:10}'.format('x') }}|{{ '{:_d}'.format(1234567) }}|{{ '{:e}'.format(0.0) }}|{{ '{:.3e}'.format(-12345.6789) }}|{{ '{:=+8d}'.format(42) }}|{{ '{:x<4}'.format('a') }}",
    "{{ '{:d}'.format(true) }}|{{ '{}'.format(true) }}|{{ '{:5}'.format(true) }}|{{ '{:f}'.format(3) }}|{{ '{:.2%}'.format(1) }}|{{ '{:g}'.format(123456789) }}|{{ '{:G}'.format(1e-10) }}|{{ '{:,}'.format(1234.5) }}",
    "{{ '{}'.format([1, 'a']) }}|{{ '{0}{0}'.format('x') }}|{{ '{a.b}'.format(a={'b': 2}) }}",
    "{{ '{:d}'.format(1.5) }}",
    "{{ '{0} {}'.format(1, 2) }}",
    "{{ '%(a)s %s' % {'a': 1} }}",
    "{{ '%d' % none }}",
    "{{ 'x'.split(1) }}",
    "{{ [3, 'a'] | max }}",
    "{{ [3, 'a'] | sort }}",
    "{{ 'ß' | upper }}|{{ 'ǅ' | lower }}|{{ 'ﬁ' | upper }}|{{ 'İ' | lower | length }}|{{ 'Σ' | lower }}|{{ 'ΌΣΟΣ' | lower }}|{{ 'ǆemal ǅ' | title }}|{{ 'ǅ'.isupper() }}|{{ 'ﬁ'.islower() }}|{{ 'ﬁx' | capitalize }}",
    "{{ 'ΣΑΣ ΣΑΣ.' | lower }}|{{ \"ΜΆΣ'\" | lower }}|{{ 'aΣb' | lower }}|{{ 'Tiếng Việt ĐẠI HỌC' | lower }}|{{ 'tiếng việt đại học' | upper }}|{{ 'tiếng việt' | title }}|{{ 'ẞ' | lower }}|{{ 'Привет, МИР' | swapcase }}",
]:
    feat(t)


def feature_cases():
    cases = []
    for template, ctx in F:
        context = CONTEXTS[ctx]

        def run():
            compiled = _compile_jinja_template(template)
            return compiled.render(**copy.deepcopy(context))

        cases.append({"template": template, "context": ctx, **outcome(run)})
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    versions = {"jinja2": jinja2.__version__, "transformers": transformers.__version__}
    chats = {
        "generator": "tests/reference/make_chat_template_fixtures.py",
        "versions": versions,
        "fallback_template": CHATML_FALLBACK,
        "templates": TEMPLATES,
        "conversations": CONVERSATIONS,
        "cases": chat_cases() + shared_cases(),
    }
    features = {
        "generator": "tests/reference/make_chat_template_fixtures.py",
        "versions": versions,
        "contexts": CONTEXTS,
        "cases": feature_cases(),
    }
    (OUT / "chats.json").write_text(json.dumps(chats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUT / "features.json").write_text(json.dumps(features, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n_err = sum("error" in c for c in chats["cases"] + features["cases"])
    print(f"{len(chats['cases'])} chat cases, {len(features['cases'])} feature cases ({n_err} expect errors)")


if __name__ == "__main__":
    main()
