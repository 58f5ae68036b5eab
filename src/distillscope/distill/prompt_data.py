"""Vocabulary of the built-in prompt generator: knowledge topics, tasks, names, passages.

Pure data, no logic. The templates that use it live in :mod:`prompt_data_families`.
Every list is a tuple so nothing can mutate it at run time.
"""

from __future__ import annotations

# Knowledge domains and the concepts asked about in each (QA, explanation, creative, writing).
KNOWLEDGE: dict[str, tuple[str, ...]] = {
    "physics": ("entropy", "quantum entanglement", "Newton's third law", "the Doppler effect",
                "superconductivity", "special relativity", "electromagnetic induction",
                "wave-particle duality", "friction", "black-body radiation", "nuclear fission", "buoyancy"),
    "biology": ("photosynthesis", "natural selection", "the immune system", "DNA replication", "mitochondria",
                "CRISPR gene editing", "cell division", "the nitrogen cycle", "enzymes", "symbiosis",
                "homeostasis", "protein folding"),
    "chemistry": ("covalent bonds", "oxidation and reduction", "pH and acidity", "catalysts", "isotopes",
                  "polymers", "chemical equilibrium", "the periodic table", "electronegativity", "combustion",
                  "solubility", "activation energy"),
    "astronomy": ("black holes", "the life cycle of stars", "exoplanets", "dark matter", "the Big Bang",
                  "tides", "solar eclipses", "neutron stars", "the Kuiper belt",
                  "the cosmic microwave background", "gravitational waves", "the seasons on Earth"),
    "history": ("the fall of the Roman Empire", "the printing press", "the Industrial Revolution",
                "the French Revolution", "the Silk Road", "the Cold War", "the Renaissance",
                "the Meiji Restoration", "the Black Death", "the invention of writing", "the Marshall Plan",
                "the Ottoman Empire"),
    "economics": ("inflation", "supply and demand", "comparative advantage", "opportunity cost",
                  "monetary policy", "compound interest", "market failure", "game theory", "GDP", "tariffs",
                  "price elasticity of demand", "central banks"),
    "computer science": ("recursion", "hash tables", "public-key cryptography", "garbage collection",
                         "virtual memory", "big-O notation", "TCP/IP", "compilers", "consensus algorithms",
                         "neural networks", "database indexes", "caching"),
    "mathematics": ("prime numbers", "the Pythagorean theorem", "derivatives", "probability", "matrices",
                    "the Fibonacci sequence", "proof by induction", "complex numbers", "Bayes' theorem",
                    "logarithms", "graph theory", "the central limit theorem"),
    "health": ("vaccines", "antibiotic resistance", "blood pressure", "sleep cycles", "the placebo effect",
               "cholesterol", "the gut microbiome", "insulin", "anaesthesia", "herd immunity",
               "inflammation", "dehydration"),
    "geography": ("plate tectonics", "monsoons", "river deltas", "glaciers", "the water cycle", "deserts",
                  "coral reefs", "time zones", "ocean currents", "volcanoes", "urbanisation", "the Himalayas"),
    "psychology": ("cognitive dissonance", "confirmation bias", "classical conditioning", "working memory",
                   "the Dunning-Kruger effect", "intrinsic motivation", "habit formation",
                   "the bystander effect", "growth mindset", "anchoring bias", "flow state",
                   "attachment theory"),
    "philosophy": ("utilitarianism", "the trolley problem", "Stoicism", "free will", "the ship of Theseus",
                   "existentialism", "the social contract", "Plato's cave", "moral relativism",
                   "Occam's razor", "the mind-body problem", "epistemology"),
    "music": ("harmony", "the circle of fifths", "syncopation", "equal temperament", "counterpoint",
              "the blues scale", "sonata form", "polyrhythm", "timbre", "jazz improvisation",
              "the overtone series", "minimalism in music"),
    "cooking": ("the Maillard reaction", "emulsions", "fermentation", "sourdough starters", "braising",
                "caramelisation", "gluten development", "sous vide cooking", "brining", "tempering chocolate",
                "umami", "knife skills"),
    "finance": ("index funds", "diversification", "bonds", "credit scores", "budgeting", "mortgages",
                "inflation-protected securities", "dollar-cost averaging", "stock options", "emergency funds",
                "compound returns", "risk tolerance"),
    "environment": ("climate change", "renewable energy", "carbon capture", "biodiversity loss",
                    "ocean acidification", "recycling", "deforestation", "the greenhouse effect",
                    "electric vehicles", "sustainable agriculture", "water scarcity", "microplastics"),
    "literature": ("the unreliable narrator", "magical realism", "the hero's journey", "Shakespearean sonnets",
                   "satire", "stream of consciousness", "dystopian fiction", "foreshadowing", "allegory",
                   "the Gothic novel", "haiku", "epic poetry"),
    "linguistics": ("phonemes", "language families", "pidgins and creoles", "the Sapir-Whorf hypothesis",
                    "grammatical gender", "loanwords", "tonal languages", "language acquisition in children",
                    "morphology", "dialects", "code-switching", "etymology"),
    "sports": ("the offside rule", "marathon training", "VO2 max", "the physics of a curveball",
               "tennis scoring", "interval training", "the Tour de France", "chess openings",
               "swimming technique", "sports nutrition", "the Olympic Games", "muscle recovery"),
    "engineering": ("suspension bridges", "the internet", "GPS", "lithium-ion batteries", "3D printing",
                    "semiconductors", "jet engines", "solar panels", "fiber optics", "blockchains", "robotics",
                    "wind turbines"),
    "civics": ("the separation of powers", "due process", "copyright", "the jury system", "human rights",
               "contract law", "voting systems", "federalism", "freedom of speech", "international treaties",
               "privacy law", "the rule of law"),
    "art": ("impressionism", "perspective drawing", "colour theory", "the Bauhaus", "chiaroscuro",
            "abstract expressionism", "ukiyo-e woodblock prints", "bronze casting", "street art",
            "the golden ratio in art", "photographic composition", "art restoration"),
}

AUDIENCES: tuple[str, ...] = (
    "to a five-year-old", "to a high-school student", "in simple terms", "to an expert", "in two sentences",
    "in one paragraph", "like I'm a complete beginner", "to a software engineer", "for a university lecture",
    "without any jargon", "to my grandmother", "in under 100 words",
)

# Coding: areas (the topic) and the tasks asked in each; languages are a separate slot.
CODING_TASKS: dict[str, tuple[str, ...]] = {
    "strings": ("reverses a string", "checks whether a string is a palindrome", "counts the vowels in a string",
                "capitalizes the first letter of every word",
                "removes duplicate characters from a string while preserving order",
                "checks whether two strings are anagrams", "compresses a string with run-length encoding"),
    "lists": ("returns the second largest number in a list", "flattens a nested list",
              "removes duplicates from a list while keeping the order", "rotates an array by k positions",
              "merges two sorted lists into one sorted list", "finds the longest increasing subsequence",
              "splits a list into chunks of size n"),
    "algorithms": ("implements binary search", "sorts a list with merge sort", "implements quicksort",
                   "computes the nth Fibonacci number with memoization",
                   "finds all primes below n with the Sieve of Eratosthenes",
                   "computes the greatest common divisor of two numbers", "solves the Tower of Hanoi"),
    "data structures": ("implements a stack", "implements a queue using two stacks", "implements an LRU cache",
                        "implements a binary search tree with insert and search", "implements a min-heap",
                        "detects a cycle in a linked list", "implements a trie for prefix search"),
    "files and data": ("reads a CSV file and prints the average of a column",
                       "counts word frequencies in a text file", "parses a JSON file and prints all keys",
                       "merges two JSON objects recursively", "validates an email address with a regular expression",
                       "converts a date string from DD/MM/YYYY to ISO format"),
    "systems": ("fetches a URL and retries on failure with backoff", "implements a token-bucket rate limiter",
                "parses the query parameters of a URL", "computes the SHA-256 hash of a file",
                "runs tasks concurrently with a limit on parallelism", "watches a directory for new files"),
    "graphs": ("performs breadth-first search on a graph", "finds shortest paths with Dijkstra's algorithm",
               "detects a cycle in a directed graph", "performs a topological sort",
               "counts the connected components of a graph", "checks whether a graph is bipartite"),
}

LANGUAGES: tuple[str, ...] = ("Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "C++", "C#", "Ruby",
                              "Kotlin")

ADVICE_TASKS: tuple[str, ...] = (
    "prepare for a job interview", "learn a new language as an adult", "start running regularly",
    "save money on groceries", "write a good cover letter", "improve my sleep", "negotiate a higher salary",
    "keep houseplants alive", "plan a week of healthy meals", "give a confident presentation",
    "organise a small wedding", "learn to play the guitar", "reduce screen time", "start a vegetable garden",
    "make friends in a new city", "study for a maths exam", "set up a home office", "train a puppy",
    "pay off credit card debt", "write a novel", "learn to code", "travel on a tight budget",
    "deal with a difficult coworker", "get better at chess", "start meditating", "plan a road trip",
    "prepare for a marathon", "declutter my apartment", "choose a laptop for programming",
    "keep a journal consistently",
)

NAMES: tuple[str, ...] = (
    "Alice", "Bob", "Carmen", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kofi", "Lena",
    "Mateo", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Ximena",
    "Yusuf", "Zoe", "Aiko", "Bruno", "Chloe", "Diego",
)

STYLES: tuple[str, ...] = ("formal", "casual", "friendly", "persuasive", "concise", "humorous",
                           "professional", "enthusiastic", "neutral", "poetic")

TRANSLATION_LANGUAGES: tuple[str, ...] = ("French", "German", "Spanish", "Italian", "Portuguese", "Japanese",
                                          "Chinese", "Dutch", "Korean", "Turkish")

# Short passages to rewrite; {concept} and {name} are filled in, so the space stays large.
PASSAGES: tuple[str, ...] = (
    "Hi team, just a reminder that the meeting about {concept} has been moved to Thursday. "
    "Please bring your notes and be on time.",
    "Our new course on {concept} starts next month. It covers the basics and some advanced material, "
    "and there are still a few places left.",
    "{name} spent the whole weekend reading about {concept} and now wants to tell everyone about it.",
    "Dear customer, we regret to inform you that the workshop on {concept} is cancelled due to low attendance. "
    "A full refund will be issued.",
    "I think {concept} is really interesting but honestly the textbook explains it very badly and I got lost.",
    "The report on {concept} is late because the data arrived two weeks after the deadline we agreed on.",
    "{name} gave a talk about {concept} yesterday. People liked it, although it ran twenty minutes over time.",
    "Thanks for your question about {concept}. We will look into it and get back to you within three days.",
    "Welcome to the club! This month we are exploring {concept}, so come along on Friday evening.",
    "The museum's new exhibition on {concept} opens on Saturday and tickets are free for students.",
)

BAD_SENTENCES: tuple[str, ...] = (
    "me and him goes to the store yesterday and buyed three apple",
    "their going to they're house after the the concert",
    "she dont know nothing about {concept} but she talk about it all the time",
    "i has been studying {concept} since two years and i still doesnt understand it",
    "the datas shows that {concept} are more important then we thinked",
    "{name} and me was very suprised by the results of the experiment",
    "everyone have to bring they own lunch to the meeting tomorow",
    "if i would have knew about {concept} earlier i would of passed the exam",
)

SENTENCES_TO_TRANSLATE: tuple[str, ...] = (
    "Where is the nearest train station?", "I would like to learn more about {concept}.",
    "Could you please send me the report by Friday?", "The weather is lovely today, let's go for a walk.",
    "{name} is giving a lecture about {concept} tomorrow morning.", "How much does this cost?",
    "I am sorry, I did not understand the question.", "Thank you very much for your help yesterday.",
)

# Sentiment classification: reviewed things per domain, and positive / negative fragments.
REVIEW_SUBJECTS: dict[str, tuple[str, ...]] = {
    "restaurants": ("the pasta", "the service", "the dessert menu", "the new bistro on Main Street",
                    "the sushi platter", "the breakfast buffet"),
    "electronics": ("these headphones", "the new phone", "this laptop", "the smartwatch", "the charger",
                    "this wireless keyboard"),
    "movies": ("the film", "the sequel", "the documentary", "the animated feature", "the director's new movie",
               "the series finale"),
    "hotels": ("the room", "the hotel staff", "the pool area", "the check-in process", "the hotel breakfast",
               "the location of the hotel"),
    "books": ("the novel", "this cookbook", "the biography", "the second book of the trilogy",
              "this travel guide", "the short-story collection"),
}
POSITIVE_FRAGMENTS: tuple[str, ...] = (
    "was absolutely wonderful", "exceeded all my expectations", "is worth every penny",
    "made my whole week", "was a delight from start to finish", "is the best I have tried in years",
)
NEGATIVE_FRAGMENTS: tuple[str, ...] = (
    "was a complete waste of money", "fell apart after two days", "was painfully disappointing",
    "is the worst I have tried in years", "left me frustrated and annoyed", "did not live up to the hype",
)

# Logic puzzles.
COMPARATIVES: tuple[tuple[str, str, str], ...] = (
    # (comparative, superlative of the low end, superlative of the high end)
    ("taller than", "the shortest", "the tallest"), ("older than", "the youngest", "the oldest"),
    ("faster than", "the slowest", "the fastest"), ("heavier than", "the lightest", "the heaviest"),
    ("richer than", "the poorest", "the richest"),
)
NONSENSE_WORDS: tuple[str, ...] = ("blips", "zorgs", "wumps", "glorbs", "fens", "trocks", "mibbles", "quaxes",
                                   "drells", "snarps", "vints", "plonks")
WEEKDAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Chain-of-thought elicitation suffixes: how distillers ask for reasoning traces.
COT_SUFFIXES: tuple[str, ...] = (
    "Let's think step by step.",
    "Think step by step before answering.",
    "Show your reasoning, then give the final answer on its own line.",
    "Explain your reasoning in detail before giving the answer.",
    "Reason through the problem carefully and show every step.",
    "First think it through, then answer.",
    "Please write out your full chain of thought before the answer.",
    "Walk me through your thinking step by step.",
)
