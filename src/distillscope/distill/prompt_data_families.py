"""Template families of the built-in prompt generator.

A *family* is one kind of request (``math.change``: "how much change does X get?") written in
several paraphrases; template ``math.change/2`` is paraphrase 2 of that family. Each family has
a slot filler ``fill(rng, topic) -> (slots, answer)`` that draws the slot values for a topic and,
for maths, logic and classification, computes the known answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from distillscope.distill import prompt_data as D

Slots = dict[str, object]
Filler = Callable[[random.Random, str], tuple[Slots, "str | None"]]


@dataclass(frozen=True)
class Family:
    """One kind of request: its paraphrases, the topics it covers and its slot filler."""

    name: str
    category: str
    texts: tuple[str, ...]
    topics: tuple[str, ...]
    fill: Filler
    cot_ok: bool = False


KNOWLEDGE_TOPICS = tuple(D.KNOWLEDGE)


def _concept(rng: random.Random, topic: str) -> Slots:
    concept, concept2 = rng.sample(D.KNOWLEDGE[topic], 2)
    return {"topic": topic, "concept": concept, "concept2": concept2, "audience": rng.choice(D.AUDIENCES),
            "n": rng.choice((3, 4, 5, 6, 8, 10)), "name": rng.choice(D.NAMES)}


def _knowledge(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return _concept(rng, topic), None


def _coding(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return {"task": rng.choice(D.CODING_TASKS[topic]), "language": rng.choice(D.LANGUAGES)}, None


def _advice(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return {"task": rng.choice(D.ADVICE_TASKS), "name": rng.choice(D.NAMES)}, None


def _passage(rng: random.Random, topic: str, pool: tuple[str, ...]) -> str:
    c = _concept(rng, topic)
    return rng.choice(pool).format(concept=c["concept"], name=c["name"])


def _rewrite(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return {"passage": _passage(rng, topic, D.PASSAGES), "style": rng.choice(D.STYLES)}, None


def _grammar(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return {"passage": _passage(rng, topic, D.BAD_SENTENCES)}, None


def _translate(rng: random.Random, topic: str) -> tuple[Slots, None]:
    return {"passage": _passage(rng, topic, D.SENTENCES_TO_TRANSLATE),
            "lang": rng.choice(D.TRANSLATION_LANGUAGES)}, None


# --- classification (known labels) -------------------------------------------------------------

def _sentiment(rng: random.Random, topic: str) -> tuple[Slots, str]:
    positive = rng.random() < 0.5
    fragment = rng.choice(D.POSITIVE_FRAGMENTS if positive else D.NEGATIVE_FRAGMENTS)
    subject = rng.choice(D.REVIEW_SUBJECTS[topic])
    review = f"{subject[0].upper()}{subject[1:]} {fragment}."
    return {"review": review}, "positive" if positive else "negative"


def _topic_label(rng: random.Random, topic: str) -> tuple[Slots, str]:
    concept = rng.choice(D.KNOWLEDGE[topic])
    others = rng.sample([t for t in KNOWLEDGE_TOPICS if t != topic], 3)
    options = [topic, *others]
    rng.shuffle(options)
    frame = rng.choice(("Today's lecture covered {c} in detail.", "I just read a long article about {c}.",
                        "Our study group argued about {c} for an hour.", "The exam has a question on {c}."))
    return {"sentence": frame.format(c=concept), "options": ", ".join(options)}, topic


# --- maths word problems (known answers) -------------------------------------------------------

def _money(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _change(rng: random.Random, topic: str) -> tuple[Slots, str]:
    item = rng.choice(("notebooks", "apples", "pens", "coffees", "tickets", "sandwiches", "candles"))
    a, p = rng.randint(2, 9), rng.randint(1, 12)
    bill = next(b for b in (20, 50, 100, 200) if b > a * p)
    return {"name": rng.choice(D.NAMES), "a": a, "item": item, "p": p, "bill": bill}, str(bill - a * p)


def _speed(rng: random.Random, topic: str) -> tuple[Slots, str]:
    s, t = rng.randint(4, 120), rng.randint(2, 9)
    vehicle = rng.choice(("car", "train", "cyclist", "bus", "boat", "truck"))
    return {"vehicle": vehicle, "d": s * t, "t": t}, str(s)


def _distance(rng: random.Random, topic: str) -> tuple[Slots, str]:
    s, t = rng.randint(4, 120), rng.randint(2, 9)
    vehicle = rng.choice(("car", "train", "cyclist", "bus", "boat", "truck"))
    return {"vehicle": vehicle, "s": s, "t": t}, str(s * t)


def _workers(rng: random.Random, topic: str) -> tuple[Slots, str]:
    k, d = rng.randint(2, 12), rng.randint(2, 20)
    total = k * d
    k2 = rng.choice([x for x in range(2, total + 1) if total % x == 0 and x != k] or [k])
    job = rng.choice(("build a wall", "paint a house", "harvest a field", "assemble the furniture"))
    return {"k": k, "d": d, "k2": k2, "job": job}, str(total // k2)


def _discount(rng: random.Random, topic: str) -> tuple[Slots, str]:
    price = 20 * rng.randint(1, 40)
    pct = rng.choice((10, 20, 25, 30, 40, 50, 75))
    thing = rng.choice(("jacket", "bicycle", "lamp", "pair of shoes", "backpack", "chair"))
    return {"thing": thing, "price": price, "pct": pct}, _money(price * (100 - pct) / 100)


def _share(rng: random.Random, topic: str) -> tuple[Slots, str]:
    k, total = rng.randint(2, 9), rng.randint(10, 200)
    things = rng.choice(("marbles", "stickers", "cookies", "cards", "stamps"))
    q, r = divmod(total, k)
    return {"name": rng.choice(D.NAMES), "total": total, "things": things, "k": k}, f"{q} each, {r} left over"


def _area(rng: random.Random, topic: str) -> tuple[Slots, str]:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    place = rng.choice(("garden", "room", "parking lot", "field", "swimming pool", "classroom"))
    return {"place": place, "a": a, "b": b}, f"area {a * b} square metres, perimeter {2 * (a + b)} metres"


def _age(rng: random.Random, topic: str) -> tuple[Slots, str]:
    x, k, y = rng.randint(3, 20), rng.randint(2, 4), rng.randint(2, 15)
    n1, n2 = rng.sample(D.NAMES, 2)
    return {"name": n1, "name2": n2, "x": x, "k": k, "y": y}, str(k * x + y)


def _interest(rng: random.Random, topic: str) -> tuple[Slots, str]:
    principal, r, t = 100 * rng.randint(1, 100), rng.randint(1, 9), rng.randint(1, 10)
    return {"principal": principal, "r": r, "t": t}, _money(principal * r * t / 100)


def _recipe(rng: random.Random, topic: str) -> tuple[Slots, str]:
    s, s2 = rng.sample((2, 3, 4, 5, 6, 8, 10, 12), 2)
    per = rng.randint(5, 80)
    ingredient = rng.choice(("flour", "sugar", "butter", "rice", "cheese", "lentils"))
    return {"s": s, "q": per * s, "s2": s2, "ingredient": ingredient}, str(per * s2)


def _clock(rng: random.Random, topic: str) -> tuple[Slots, str]:
    h, m = rng.randint(0, 23), rng.choice(range(0, 60, 5))
    dh, dm = rng.randint(0, 9), rng.choice(range(5, 60, 5))
    end = (h * 60 + m + dh * 60 + dm) % (24 * 60)
    return ({"h": f"{h:02d}", "m": f"{m:02d}", "dh": dh, "dm": dm}, f"{end // 60:02d}:{end % 60:02d}")


def _percent(rng: random.Random, topic: str) -> tuple[Slots, str]:
    n = 20 * rng.randint(1, 30)
    pct = rng.choice((5, 10, 15, 25, 35, 40, 45, 55, 60, 65, 75, 80, 85, 90, 95))
    group, prop = rng.choice((("students in a school", "walk to school"), ("people at a concert", "bought a T-shirt"),
                              ("trees in an orchard", "are apple trees"), ("employees at a company", "work remotely"),
                              ("members of a club", "voted yes"), ("cars in a car park", "are electric")))
    return {"n": n, "pct": pct, "group": group, "prop": prop}, str(n * pct // 100)


# --- logic (known answers) ---------------------------------------------------------------------

def _order(rng: random.Random, topic: str) -> tuple[Slots, str]:
    a, b, c = rng.sample(D.NAMES, 3)
    comp, low, high = rng.choice(D.COMPARATIVES)
    ask_low = rng.random() < 0.5
    return ({"a": a, "b": b, "c": c, "comp": comp, "which": low if ask_low else high}, c if ask_low else a)


def _sequence(rng: random.Random, topic: str) -> tuple[Slots, str]:
    start = rng.randint(1, 30)
    if rng.random() < 0.5:
        step = rng.randint(2, 15)
        seq = [start + i * step for i in range(5)]
        nxt = start + 5 * step
    else:
        ratio = rng.randint(2, 4)
        seq = [start * ratio**i for i in range(5)]
        nxt = start * ratio**5
    return {"seq": ", ".join(map(str, seq))}, str(nxt)


def _syllogism(rng: random.Random, topic: str) -> tuple[Slots, str]:
    x, y, z = rng.sample(D.NONSENSE_WORDS, 3)
    quant = rng.choice(("All", "Some"))
    return {"x": x, "y": y, "z": z, "q": quant, "ql": quant.lower()}, "yes" if quant == "All" else "not necessarily"


def _weekday(rng: random.Random, topic: str) -> tuple[Slots, str]:
    i, k = rng.randrange(7), rng.randint(2, 400)
    return {"day": D.WEEKDAYS[i], "k": k}, D.WEEKDAYS[(i + k) % 7]


def _probability(rng: random.Random, topic: str) -> tuple[Slots, str]:
    r, b = rng.randint(1, 20), rng.randint(1, 20)
    colour = rng.choice(("red", "blue"))
    p = Fraction(r if colour == "red" else b, r + b)
    return {"r": r, "b": b, "colour": colour}, f"{p.numerator}/{p.denominator}"


def _families() -> tuple[Family, ...]:
    K = KNOWLEDGE_TOPICS
    F = Family
    return (
        F("qa.define", "qa", ("What is {concept}?", "Can you tell me what {concept} is?", "Define {concept}.",
          "What does the term '{concept}' mean in {topic}?", "I keep hearing about {concept}. What is it?"),
          K, _knowledge),
        F("qa.why", "qa", ("Why is {concept} important in {topic}?", "Why does {concept} matter?",
          "What makes {concept} significant?", "Why should someone studying {topic} care about {concept}?"),
          K, _knowledge),
        F("qa.facts", "qa", ("Give me {n} interesting facts about {concept}.",
          "What are {n} key facts about {concept}?", "List {n} things everyone should know about {concept}."),
          K, _knowledge),
        F("qa.myths", "qa", ("What are common misconceptions about {concept}?",
          "What do people usually get wrong about {concept}?", "Is there a popular myth about {concept}?"),
          K, _knowledge),
        F("explain.simple", "explanation", ("Explain {concept} {audience}.",
          "How would you explain {concept} {audience}?", "Could you break down {concept} {audience}?",
          "Help me understand {concept}. Please explain it {audience}."), K, _knowledge, cot_ok=True),
        F("explain.how", "explanation", ("How does {concept} work?", "Walk me through how {concept} works.",
          "Describe the mechanism behind {concept}.", "What happens, step by step, in {concept}?"),
          K, _knowledge, cot_ok=True),
        F("explain.analogy", "explanation", ("Explain {concept} using an analogy.",
          "Give me an everyday analogy for {concept}.", "What is a good metaphor for understanding {concept}?"),
          K, _knowledge),
        F("explain.compare", "explanation", ("Compare {concept} and {concept2}.",
          "What is the difference between {concept} and {concept2}?", "How are {concept} and {concept2} related?",
          "{concept} vs {concept2}: what are the similarities and differences?"), K, _knowledge, cot_ok=True),
        F("explain.history", "explanation", ("How was {concept} discovered or developed?",
          "Give a brief history of {concept}.", "Who were the key people behind {concept}?"), K, _knowledge),
        F("creative.poem", "creative", ("Write a short poem about {concept}.", "Compose a haiku about {concept}.",
          "Write a limerick about {concept}.", "Write a {n}-line poem inspired by {concept}."), K, _knowledge),
        F("creative.story", "creative", ("Write a short story in which {concept} plays a central role.",
          "Tell a bedtime story that teaches a child about {concept}.",
          "Write a 100-word piece of flash fiction about {name} and {concept}."), K, _knowledge),
        F("creative.quiz", "creative", ("Write {n} multiple-choice quiz questions about {concept}, with answers.",
          "Create a short {topic} quiz focusing on {concept}.", "Make {n} flashcards to study {concept}."),
          K, _knowledge),
        F("writing.outline", "writing", ("Write an essay outline about {concept}.",
          "Write the introduction of a blog post about {concept}.", "Draft a short thread explaining {concept}.",
          "Write a {n}-slide presentation outline on {concept}."), K, _knowledge),
        F("writing.email", "writing", ("Write an email to {name} inviting them to a talk on {concept}.",
          "Draft a polite email asking {name} for feedback on my notes about {concept}.",
          "Write a short newsletter paragraph announcing a {topic} workshop on {concept}.",
          "Write a LinkedIn post about what I learned about {concept} this week."), K, _knowledge),
        F("code.write", "coding", ("Write a {language} function that {task}.",
          "In {language}, how would I write a function that {task}?", "Implement a {language} function that {task}.",
          "Can you give me {language} code that {task}?",
          "I need a {language} snippet that {task}. Please include comments."),
          tuple(D.CODING_TASKS), _coding, cot_ok=True),
        F("code.explain", "coding", ("Explain how to write a function that {task}, then implement it in {language}.",
          "What is the time complexity of a function that {task}? Show a {language} version.",
          "Design a function that {task}. Discuss the approach first, then give {language} code."),
          tuple(D.CODING_TASKS), _coding, cot_ok=True),
        F("code.test", "coding", ("Write unit tests in {language} for a function that {task}.",
          "What edge cases should I test for a {language} function that {task}? Write the tests."),
          tuple(D.CODING_TASKS), _coding),
        F("advice.howto", "advice", ("How do I {task}?", "What's the best way to {task}?",
          "Give me a step-by-step plan to {task}.", "I want to {task}. Where should I start?",
          "Any tips to {task}?", "My friend {name} wants to {task}. What should they do first?"),
          ("everyday",), _advice),
        F("rewrite.style", "rewriting", ("Rewrite the following text in a {style} tone:\n\n{passage}",
          "Make this sound more {style}: {passage}", "Can you rephrase this so it reads as {style}?\n{passage}"),
          K, _rewrite),
        F("rewrite.shorten", "rewriting", ("Summarize in one sentence: {passage}",
          "Shorten this to under 15 words: {passage}", "TL;DR: {passage}"), K, _rewrite),
        F("rewrite.grammar", "rewriting", ("Fix the grammar and spelling: {passage}",
          "Proofread this sentence: \"{passage}\"", "Correct the mistakes in: {passage}"), K, _grammar),
        F("rewrite.translate", "rewriting", ("Translate into {lang}: {passage}",
          "How do you say \"{passage}\" in {lang}?", "Please give the {lang} translation of: {passage}"),
          K, _translate),
        F("classify.sentiment", "classification", (
          "Classify the sentiment of this review as positive or negative: \"{review}\"",
          "Is the following review positive or negative?\n{review}",
          "Review: {review}\nSentiment (positive/negative):"), tuple(D.REVIEW_SUBJECTS), _sentiment),
        F("classify.topic", "classification", (
          "Which topic does this sentence belong to ({options})? \"{sentence}\"",
          "Sentence: {sentence}\nPick one topic from: {options}.",
          "Categorize the following sentence into one of {options}: {sentence}"), K, _topic_label),
        F("math.change", "math", (
          "{name} buys {a} {item} at ${p} each and pays with a ${bill} bill. How much change does {name} get?",
          "If {a} {item} cost ${p} each and {name} pays with ${bill}, how much money comes back?",
          "{name} has a ${bill} bill and buys {a} {item} priced at ${p} apiece. What is the change?"),
          ("shopping",), _change, cot_ok=True),
        F("math.discount", "math", ("A {thing} costs ${price}. It is on sale for {pct}% off. What is the sale price?",
          "What do you pay for a ${price} {thing} with a {pct}% discount?",
          "The price of a {thing} is ${price}; the shop takes {pct}% off. What is the new price?"),
          ("shopping",), _discount, cot_ok=True),
        F("math.speed", "math", ("A {vehicle} travels {d} km in {t} hours. What is its average speed in km/h?",
          "If a {vehicle} covers {d} km in {t} hours, how fast is it going on average?"),
          ("travel",), _speed, cot_ok=True),
        F("math.distance", "math", ("A {vehicle} moves at {s} km/h for {t} hours. How far does it go?",
          "How many kilometres does a {vehicle} cover in {t} hours at {s} km/h?"),
          ("travel",), _distance, cot_ok=True),
        F("math.workers", "math", (
          "If {k} workers can {job} in {d} days, how many days would {k2} workers need at the same rate?",
          "It takes {k} people {d} days to {job}. How long would it take {k2} people?"),
          ("work",), _workers, cot_ok=True),
        F("math.share", "math", (
          "{name} has {total} {things} and shares them equally among {k} friends. "
          "How many does each friend get and how many are left over?",
          "Split {total} {things} evenly between {k} children. How many each, and what remains?"),
          ("sharing",), _share, cot_ok=True),
        F("math.area", "math", ("A rectangular {place} is {a} m long and {b} m wide. "
          "What are its area and perimeter?",
          "Find the area and the perimeter of a {a} m by {b} m {place}."), ("geometry",), _area, cot_ok=True),
        F("math.age", "math", ("{name} is {x} years old. {name2} is {k} times as old. "
          "How old will {name2} be in {y} years?",
          "{name2}'s age is {k} times {name}'s, and {name} is {x}. What will {name2}'s age be {y} years from now?"),
          ("ages",), _age, cot_ok=True),
        F("math.interest", "math", ("You deposit ${principal} at {r}% simple interest per year. "
          "How much interest do you earn after {t} years?",
          "What is the simple interest on ${principal} at {r}% a year for {t} years?"),
          ("finance",), _interest, cot_ok=True),
        F("math.recipe", "math", ("A recipe for {s} people needs {q} g of {ingredient}. "
          "How many grams are needed for {s2} people?",
          "Scale this: {q} g of {ingredient} serves {s}. How much for {s2} servings?"),
          ("cooking",), _recipe, cot_ok=True),
        F("math.clock", "math", ("A train leaves at {h}:{m} and the trip takes {dh} hours and {dm} minutes. "
          "At what time does it arrive (24-hour clock)?",
          "If I start at {h}:{m} and work for {dh} h {dm} min, when do I finish (24-hour time)?"),
          ("time",), _clock, cot_ok=True),
        F("math.percent", "math", ("There are {n} {group}. {pct}% of them {prop}. How many is that?",
          "Out of {n} {group}, {pct}% {prop}. How many {group} is that?"), ("percentages",), _percent, cot_ok=True),
        F("reason.order", "reasoning", ("{a} is {comp} {b}. {b} is {comp} {c}. Who is {which}?",
          "Given that {a} is {comp} {b} and {b} is {comp} {c}, who is {which} of the three?"),
          ("logic",), _order, cot_ok=True),
        F("reason.sequence", "reasoning", ("What is the next number in the sequence: {seq}, ...?",
          "Continue the pattern: {seq}, ?", "Find the rule and the next term of {seq}."),
          ("patterns",), _sequence, cot_ok=True),
        F("reason.syllogism", "reasoning", ("{q} {x} are {y}. All {y} are {z}. Are all {x} {z}?",
          "Suppose {ql} {x} are {y}, and all {y} are {z}. Does it follow that all {x} are {z}?"),
          ("logic",), _syllogism, cot_ok=True),
        F("reason.weekday", "reasoning", ("If today is {day}, what day of the week will it be in {k} days?",
          "Today is {day}. Which weekday is it {k} days from now?"), ("calendar",), _weekday, cot_ok=True),
        F("reason.probability", "reasoning", ("A bag holds {r} red and {b} blue balls. "
          "If you draw one at random, what is the probability it is {colour}?",
          "With {r} red and {b} blue marbles in a jar, what are the chances of picking {colour}?"),
          ("probability",), _probability, cot_ok=True),
    )


FAMILIES: tuple[Family, ...] = _families()
