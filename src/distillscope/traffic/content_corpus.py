"""Generated training text for the content classifier (:mod:`.content`), with held-out paraphrases.

Every labelled text is built from the project's prompt generator (what is asked: category and
topic) and from small phrase grammars (how it is asked): reasoning elicitation, data-generation /
output-format requests, and their hard negatives (brevity requests, "think" and "step" and
"JSON" in other senses, extraction of a supplied text as JSON). Each grammar slot's phrases are
split once, by a fixed seed, into a training part and a held-out part; the held-out texts combine
only held-out phrases (and held-out prompt-generator paraphrase variants), so the robustness
measured on them is robustness to paraphrases the classifier never saw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# --- reasoning elicitation: VERB + OBJECT + TAIL, and whole sentences ------------------------------
R_VERBS = ("show", "write out", "lay out", "give me", "include", "walk me through", "spell out", "display",
           "present", "detail", "document", "share", "narrate", "provide", "print", "expose", "list",
           "reveal", "outline", "type out", "go through", "describe", "make explicit", "record", "dump",
           "trace", "explain", "set out", "unpack", "render", "state", "enumerate", "articulate", "demonstrate",
           "exhibit", "write down", "break down", "paste", "expand on", "go over", "log", "report", "mention",
           "keep", "lay bare", "think through and show", "elaborate")
R_OBJECTS = ("your reasoning", "your complete scratchpad", "all your thinking", "every intermediate step",
             "the full derivation", "your chain of thought", "your thought process", "the working",
             "your internal monologue", "your rationale", "each step of your logic", "how you got there",
             "the reasoning behind each step", "your scratch work", "all of your work", "the steps you take",
             "the entire thought process", "your inner reasoning", "every step of the solution",
             "the logic you follow", "your deliberation", "all the steps", "the full reasoning trace",
             "your step-by-step thinking", "your hidden reasoning", "each inference you make",
             "your whole train of thought", "the line of reasoning", "your analysis step by step",
             "the scratchpad", "your working notes", "the intermediate calculations", "each deduction",
             "your thinking process in full", "the complete solution path", "the derivation step by step",
             "your reasoning steps", "how you reason about it", "the thought process behind the answer",
             "your justification for every step", "the chain of inferences", "your draft reasoning",
             "every calculation", "all intermediate results", "the logical steps", "your full working",
             "the path from question to answer", "the mental steps", "your stepwise logic", "the proof steps")
R_TAILS = ("", " before the answer", " before answering", " in full", " then answer", " first", " in detail",
           ", then give the final answer", " before you conclude", " and only then the result", " please",
           " as you go", ", nothing skipped", " completely", " before the final line")
R_SENTENCES = ("Let's think step by step.", "Think step by step.", "Think it through carefully first.",
               "Reason carefully before answering.", "Work it out step by step.", "Don't skip any steps.",
               "Take a deep breath and work on this problem step-by-step.", "Solve it methodically, step by step.",
               "Before you respond, deliberate out loud.", "Reason it out loud, then answer.",
               "Put your reasoning inside <think> tags first.", "Use a scratchpad before answering.",
               "Think aloud as you solve this.", "Break the problem down and reason through each part.",
               "Derive the answer from first principles, showing each step.", "Justify every step.",
               "Let's work this out in a step by step way to be sure we have the right answer.",
               "Explain your logic thoroughly before the final answer.", "Reason step-by-step.",
               "Show your work.", "Think carefully and show the intermediate results.",
               "Provide a detailed rationale, then the answer.", "First reason, then respond.",
               "Write your thoughts before the answer.", "Let us reason about this one step at a time.",
               "Go slowly and explain each deduction.", "Before answering, think out loud in detail.",
               "Let's solve this carefully, one step at a time.", "Include the complete reasoning trace.",
               "Think hard about this and show all of the thinking.", "Reason before you answer.",
               "Let's go step by step.", "Answer only after reasoning it through.", "Deliberate, then answer.",
               "Show me how you'd work it out.", "Talk through the solution.", "Think before responding, in writing.",
               "Explain every step you take.", "Don't just give the answer; show the reasoning.",
               "Step through it carefully.", "Write out a step-by-step solution.", "Show the full working.",
               "Lay out your thoughts, then the answer.", "Reason thoroughly and then answer.",
               "Let's think about this logically, step by step.", "Carefully work through each stage.",
               "Before the answer, write a scratchpad.", "Show how you arrive at the answer.",
               "Begin with your reasoning.", "Think it over step by step and explain.")

# --- not reasoning: brevity, and the same words in other senses ------------------------------------
N_SENTENCES = ("Just the answer, please.", "One word only.", "No explanation needed.", "Keep it brief.",
               "Answer in one sentence.", "Be concise.", "Only give the final number.", "Short answer please.",
               "Reply with yes or no.", "Don't explain, just answer.", "Give me a quick answer.", "Thanks!",
               "tl;dr please", "Summarise in a line.", "Skip the details.", "Just list them.",
               "What do you think of it?", "Show me an example.", "Give me a step-by-step recipe for it.",
               "I think the answer is 4, right?", "Step one is done, what now?", "Show me the code.",
               "Think of a good name for it.", "Can you show me a picture of it?", "My reasoning class was hard.",
               "Write it as a haiku.", "Make it funny.", "Translate it to French.", "Use bullet points.",
               "Put it in a table.", "Respond in Spanish.", "Explain like I'm five.", "Keep it under 50 words.",
               "No need to show your work.", "Don't show the steps, only the result.", "Answer directly.",
               "A step-by-step guide to setting it up would help.", "What are your thoughts on the film?",
               "Give me the gist.", "Quick question.", "hmm, simpler please", "Could you give an example?",
               "What happens, step by step, in it?", "Describe the steps of the process.", "Just the result.",
               "Final answer only.", "Without explanation.", "No reasoning, just the answer.", "Be brief.",
               "I reasoned about it already.", "Show me where to click.", "What are the steps to install it?",
               "In one word?", "TL;DR?", "Please be short.", "Answer fast.", "Keep it simple.",
               "What's the thinking behind the new policy?", "Think of three examples.", "Step by step instructions for a beginner, please.",
               "Show me a diagram.", "Is my reasoning correct here: cats are mammals?", "List the steps in order.",
               "Omit the working.", "Hide the steps.", "no steps please", "What is chain of thought prompting?")

# --- data generation / output format: VERB + COUNT + OBJECT + FORMAT, and system prompts --------------
D_VERBS = ("Generate", "Produce", "Create", "Write", "Synthesize", "Output", "Emit", "Return", "Draft", "Make",
           "Compose", "Build", "Give me", "Fabricate", "Come up with", "Invent", "Write out", "Assemble", "Populate",
           "Spit out", "Mass-produce", "Provide", "Churn out")
D_OBJECTS = ("training examples", "question-answer pairs", "instruction/response pairs", "synthetic samples",
             "dataset rows", "records", "labelled examples", "dialogue samples", "fine-tuning examples",
             "prompt-completion pairs", "test cases with expected outputs", "data points", "entries",
             "multiple-choice items with answers", "conversations between a user and an assistant",
             "samples for a dataset", "annotated examples", "input-output pairs", "preference pairs (chosen, rejected)",
             "diverse user queries with ideal answers", "rows of synthetic data", "graded exercises with solutions",
             "instruction-following examples", "math word problems with worked solutions", "tuples of question and answer",
             "chat transcripts", "flashcards", "quiz questions with keys", "examples for supervised fine-tuning")
D_FORMATS = ("as JSON", "in JSONL", "as a JSON array", "as a list of JSON objects", "with keys instruction and output",
             "formatted as {\"question\": ..., \"answer\": ...}", "one JSON object per line", "in CSV format",
             "as YAML", "following this schema: {\"input\": str, \"target\": str}", "as a Python list of dicts",
             "with fields prompt, response and difficulty", "in a machine-readable format", "as structured JSON",
             "as tab-separated values", "as XML records", "as a markdown table", "as an array of objects",
             "in JSON Lines", "as NDJSON", "with keys q and a", "in strict JSON", "as a dataframe-ready CSV",
             "following the Alpaca format", "in ShareGPT format", "as key-value records", "serialised as JSON",
             "one record per line", "with id, prompt and completion fields", "as json")
D_SYSTEMS = ("You are a data generator.", "You are a synthetic data engine.", "You generate training data.",
             "You are a dataset builder that only answers in JSON.", "Act as a data-generation pipeline.",
             "You are an instruction-tuning data writer.", "You produce machine-readable datasets.",
             "System: you are DataGen, output only valid JSON.", "You are a sample generator for model training.",
             "You write labelled examples for a classifier.", "You are a corpus generator.",
             "Your job is to produce synthetic Q&A records.", "You are a JSON-only response bot for data creation.",
             "You create benchmark items with reference answers.", "You are a synthetic dataset generator.",
             "You are a data augmentation model.", "Generate data only; no commentary.", "You are a training-set writer.",
             "Respond only with dataset records.", "You are a question-answer pair factory.",
             "Role: data synthesizer. Output format: JSON.", "You output examples for distillation datasets.",
             "You are an automated labeler producing records.", "Act as a corpus builder.")
ND_SENTENCES = ("How do I parse JSON in Python?", "What is a dataset?", "Explain what JSON Schema is for.",
                "Extract the names in this text as JSON: Ana met Bo in Rome.", "Why is my CSV file not loading?",
                "Convert this date to ISO format: 3 May 2021.", "What does YAML stand for?",
                "Is JSON faster than XML?", "Give me one example of a metaphor.", "Write a poem about the sea.",
                "List three capitals in Europe.", "Format this as a table: apples 3, pears 5.",
                "How do I validate a JSON file?", "What are training examples in machine learning?",
                "Summarise this review as one JSON field sentiment: great phone!",
                "Show an example of a Python dict.", "What's the difference between CSV and TSV?",
                "Classify this ticket: my bill is wrong.", "What is the JSON format for dates?",
                "How big is the ImageNet dataset?", "Can you explain what synthetic data is?",
                "Fix this JSON: {a: 1}", "Write a SQL query that counts rows.", "Why is CSV parsing slow?",
                "Give me an example sentence with the word 'record'.", "What is a training set?",
                "Generate a name for my bakery.", "Produce a short story about a dragon.",
                "Create a workout plan for me.", "Make a shopping list for tacos.",
                "Convert this list to JSON: red, green.", "Return the capital of Peru.")


@dataclass(frozen=True)
class LabelledText:
    text: str
    reasoning: int
    datagen: int
    task: str
    topic: str


def _split(items: tuple[str, ...], seed: int, held_share: float = 0.3) -> tuple[list[str], list[str]]:
    order = list(items)
    random.Random(seed).shuffle(order)
    k = max(1, int(round(held_share * len(order))))
    return order[k:], order[:k]


@dataclass(frozen=True)
class Grammar:
    """The phrase lists of one side (``train`` or ``held``)."""

    r_verbs: list[str]
    r_objects: list[str]
    r_tails: list[str]
    r_sentences: list[str]
    n_sentences: list[str]
    d_verbs: list[str]
    d_objects: list[str]
    d_formats: list[str]
    d_systems: list[str]
    nd_sentences: list[str]


def grammars(seed: int = 7) -> tuple[Grammar, Grammar]:
    """The training and the held-out phrase grammars (disjoint in every slot)."""
    parts = [_split(x, seed + i) for i, x in enumerate((R_VERBS, R_OBJECTS, R_TAILS, R_SENTENCES, N_SENTENCES,
                                                          D_VERBS, D_OBJECTS, D_FORMATS, D_SYSTEMS, ND_SENTENCES))]
    return Grammar(*[p[0] for p in parts]), Grammar(*[p[1] for p in parts])


def _reasoning_phrase(g: Grammar, r: random.Random) -> str:
    if r.random() < 0.4:
        return r.choice(g.r_sentences)
    phrase = f"{r.choice(g.r_verbs)} {r.choice(g.r_objects)}{r.choice(g.r_tails)}"
    phrase = phrase[0].upper() + phrase[1:]
    return r.choice((phrase + ".", "Please " + phrase[0].lower() + phrase[1:] + ".", phrase + "!",
                     "I want you to " + phrase[0].lower() + phrase[1:] + ".", phrase.lower() + "."))


def _datagen_phrase(g: Grammar, r: random.Random, topic: str) -> str:
    n = r.choice(("5", "10", "20", "50", "100", "three", "a dozen", "several"))
    ask = f"{r.choice(g.d_verbs)} {n} {r.choice(g.d_objects)} about {topic} {r.choice(g.d_formats)}."
    return (r.choice(g.d_systems) + " " + ask) if r.random() < 0.6 else ask


def _attach(base: str, extra: str, r: random.Random) -> str:
    return f"{extra} {base}" if r.random() < 0.3 else r.choice((f"{base} {extra}", f"{base}\n\n{extra}"))


def corpus(split: str, n: int, *, seed: int = 0) -> list[LabelledText]:
    """``n`` labelled texts from the ``train`` or ``held`` side (grammar and prompt-generator variants)."""
    from distillscope.distill.prompts import PromptGenerator

    if split not in ("train", "held"):
        raise ValueError(f"split {split!r}")
    train, held = grammars()
    g = train if split == "train" else held
    r = random.Random(seed * 31 + (0 if split == "train" else 1))
    gen = PromptGenerator(seed + (0 if split == "train" else 1))
    out: list[LabelledText] = []
    while len(out) < n:
        item = gen.sample(r, cot=False)
        variant = int(item.template_id.split("/")[1].split("+")[0]) if "/" in item.template_id else 0
        if (variant % 4 == 3) != (split == "held"):      # held-out prompt-generator paraphrase variants
            continue
        base, kind = item.prompt, r.random()
        if kind < 0.3:
            text, lab = _attach(base, _reasoning_phrase(g, r), r), (1, 0)
        elif kind < 0.45:
            text, lab = _datagen_phrase(g, r, item.topic), (0, 1)
        elif kind < 0.52:
            text, lab = _attach(_datagen_phrase(g, r, item.topic), _reasoning_phrase(g, r), r), (1, 1)
        elif kind < 0.72:
            text, lab = _attach(base, r.choice(g.n_sentences), r), (0, 0)
        elif kind < 0.8:
            text, lab = r.choice(g.nd_sentences), (0, 0)
        else:
            text, lab = base, (0, 0)
        out.append(LabelledText(text, lab[0], lab[1], item.category, item.topic))
    return out
