"""Answer each request: completion length (capped by max_tokens), text, usage, latency, status.

The completion text is synthetic (sentences from per-seed pools, with the request's topic put
in), but its shape follows the request: reasoning answers are long and stepwise, dataset answers
are JSON arrays, classifiers answer one label, and an answer that reaches ``max_tokens`` is cut
there (``finish_reason = "length"``). With ``n > 1`` the text is the first choice and
``completion_tokens`` counts all choices, as the OpenAI usage block does.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from grammar import Grammar, tidy
from world import COMPLETIONS, Request, World

DEFAULT_MAX = 4096
CHARS_PER_TOKEN = 4.0

_POOL_RULES = {
    "prose": ["CONCEPT (is|can be understood as|refers to|describes) (a way of|the idea of|a principle for) (organising|explaining|predicting|measuring) (how things change|what happens under pressure|the relationship between parts).",
              "(In practice|In short|Put simply|Broadly), (most people|practitioners|textbooks) (treat|describe|use) CONCEPT (as|like) (a tool|a rule of thumb|a starting point) (rather than|more than) (a law|a guarantee|an exact recipe).",
              "(A common|One useful|A simple) (example|illustration|analogy) is (a kitchen scale|a bank account|a thermostat|traffic on a highway|a library index), (where|in which) (inputs|small changes|each step) (add up|matter|compound).",
              "(The key point|The main takeaway|What matters most) is that CONCEPT (depends on|is limited by|works best with) (context|good data|clear assumptions|the right scale).",
              "(However|That said|On the other hand), (there are|you should know about) (exceptions|edge cases|trade-offs) (when|if) (conditions change|the numbers get large|assumptions fail).",
              "(If you want to go further|For more depth|Next), (look at|read about|try) (worked examples|the original paper|a practice problem|an interactive demo)."],
    "cot": ["(First|To start|Let me begin), (I|we) (identify|write down|list) (what is given|the known quantities|the constraints).",
            "(Next|Then|Now), (we|I) (compute|work out|check) (the intermediate value|each term|the first case): (that gives|this yields|we get) NUM.",
            "(Wait|Hmm|Actually), (let me double-check|I should verify|that seems off) (this step|the sign|the units) - (it holds|it is correct|I made a slip; correcting it gives NUM).",
            "(So|Therefore|Hence), (combining|putting together) (these|the two results|both cases), (the result|the total|x) (is|equals) NUM.",
            "Step NUM: (apply|use|recall) CONCEPT (to|on) (the expression|this case|the remaining part).",
            "(Considering|Checking) (the alternative|the edge case|another approach): (it leads to|it gives) (a contradiction|the same answer|NUM), (so|which means) (we can rule it out|the answer is consistent)."],
    "code": ["(This|The function|The code) (iterates|loops) over the (input|list|records) and (keeps|collects|returns) (the matches|unique values|the result).",
             "(Edge cases|Things to watch): (empty input|None values|very large files|unicode) (should be handled|are handled) (explicitly|with a guard clause).",
             "(Here is|Below is|This is) (a|one) (simple|straightforward|working) (version|implementation|approach) (using|based on) CONCEPT."],
}
#: literal code blocks mixed into code answers (not grammar templates: they hold brackets)
_CODE_BLOCKS = (
    "```python\ndef solve(items):\n    seen = set()\n    out = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n            out.append(x)\n    return out\n```",
    "```js\nfunction run(input) {\n  const result = input.filter(Boolean);\n  return result.map(x => x * 2);\n}\n```",
    "```c\nfor (int i = 0; i < n; i++) {\n    total += values[i];\n}\n```",
    "```go\nfor _, v := range items {\n\tif v.ok {\n\t\tcount++\n\t}\n}\n```",
    "```sql\nSELECT id, SUM(amount) FROM orders GROUP BY id HAVING SUM(amount) > 100;\n```",
    "```rust\nlet total: i64 = values.iter().filter(|v| **v > 0).sum();\n```",
)


class Answerer:
    def __init__(self, world: World):
        self.world = world
        rng = world.rng("completion-pools")
        g = Grammar(_POOL_RULES)
        sentences = {k: [tidy(g.say(k, rng, {}, (world.dialect,))) for _ in range(800)] for k in _POOL_RULES}
        sentences["code"] += list(_CODE_BLOCKS) * 60
        # Paragraphs of four sentences, so filling a long answer takes few steps; a sentence that
        # starts with the topic gets it capitalised (Ucase marker).
        self.pools = {}
        for k, pool in sentences.items():
            marked = ["CONCEPU" + x[7:] if x.startswith("CONCEPT") else x for x in pool]
            self.pools[k] = [" ".join(rng.choice(marked) for _ in range(4)) for _ in range(600)]

    def answer(self, req: Request, rng: random.Random) -> dict[str, Any]:
        p = req.params
        max_tokens = p.get("max_tokens") or p.get("max_completion_tokens")
        cap = int(max_tokens) if max_tokens else DEFAULT_MAX
        n = int(p.get("n", 1) or 1)
        prompt_tokens = self.prompt_tokens(req)
        if req.status != 200:
            return {"completion": None, "prompt_tokens": 0, "completion_tokens": 0, "finish_reason": None,
                    "latency_ms": round(rng.uniform(2, 40), 2)}
        per_choice = []
        finish = "stop"
        for i in range(n):
            want = max(1, int(req.out_tokens * (1 if i == 0 else rng.uniform(0.7, 1.3))))
            got = min(want, cap)
            if i == 0:
                finish = "length" if want > cap else "stop"
            per_choice.append(got)
        text = self.text(req, per_choice[0], finish == "length", rng)
        completion_tokens = sum(per_choice)
        model_ms = {"atlas-pro": 24.0, "atlas-mini": 10.0, "atlas-reason": 30.0}.get(req.model, 20.0)
        latency = rng.lognormvariate(math.log(320), 0.45) + prompt_tokens * 0.04 + max(per_choice) * model_ms * rng.uniform(0.8, 1.25)
        return {"completion": text, "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "finish_reason": finish, "latency_ms": round(latency, 2)}

    @staticmethod
    def prompt_tokens(req: Request) -> int:
        if req.messages is not None:
            return sum(4 + int(len(m["content"]) / CHARS_PER_TOKEN) for m in req.messages) + 3
        return max(1, int(len(req.prompt_text or "") / CHARS_PER_TOKEN))

    def text(self, req: Request, tokens: int, cut: bool, rng: random.Random) -> str:
        kind = req.out
        concept = req.concept or "this"
        chars = int(tokens * CHARS_PER_TOKEN)
        if kind == "label":
            label = req.params.get("_label", "safe")
            return label if tokens <= 3 else f"{label} - {self._fill('prose', chars, concept, rng)}"[:max(chars, len(label))]
        if kind == "extract":
            body = json.dumps({"summary": self._fill("prose", max(chars - 80, 40), concept, rng),
                               "category": rng.choice(("billing", "technical", "other")), "amount": rng.randint(5, 900)})
            return body[:chars] if cut else body
        if kind == "code_only":
            return rng.choice(_CODE_BLOCKS).strip("`")[:chars]
        if kind == "mc":
            letter = rng.choice("ABCD")
            if tokens <= 4:
                return letter
            body = self._fill("cot", chars - 20, concept, rng)
            return body + f" The answer is ({letter})."
        if kind == "json":
            if "_label" in req.params:
                return json.dumps({"label": req.params["_label"], "confidence": round(rng.uniform(0.5, 0.99), 2)})
            return self._json(chars, concept, rng, cut)
        pool = "cot" if kind == "cot" else "code" if kind == "code" else "prose"
        body = self._fill(pool, chars, concept, rng)
        if kind == "cot" and not cut:
            body += f"\n\nFinal answer: {rng.randint(2, 999)}"
        return body[:chars] if cut else body

    def _fill(self, pool: str, chars: int, concept: str, rng: random.Random) -> str:
        paragraphs = self.pools[pool]
        out: list[str] = []
        size = 0
        upper = concept[:1].upper() + concept[1:]
        while size < chars:
            s = paragraphs[int(rng.random() * len(paragraphs))]
            s = s.replace("CONCEPU", upper).replace("CONCEPT", concept).replace("NUM", str(rng.randint(2, 500)))
            out.append(s)
            size += len(s) + 1
        return " ".join(out)

    def _json(self, chars: int, concept: str, rng: random.Random, cut: bool) -> str:
        items = []
        size = 2
        while size < chars:
            q = rng.choice(self.pools["prose"]).replace("CONCEPT", concept)
            a = self._fill(rng.choice(("prose", "cot")), rng.randint(200, 700), concept, rng)
            item = json.dumps({"instruction": q, "response": a, "difficulty": rng.choice(("easy", "medium", "hard"))})
            items.append(item)
            size += len(item) + 2
        text = "[" + ", ".join(items) + "]"
        return text[:chars] if cut else text


def endpoint_prompt(req: Request) -> str | None:
    """The logged prompt: chat messages as a JSON list, a completions prompt as text."""
    if req.endpoint == COMPLETIONS or req.messages is None:
        return req.prompt_text
    return json.dumps(req.messages, ensure_ascii=False)
