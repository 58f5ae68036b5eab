"""Word lists: a topic taxonomy (domain -> concepts), languages, products, people, places, tasks.

The taxonomy is shared by benign users and distillers: people ask about the same things.
What differs is how systematically an account walks it.
"""

from __future__ import annotations

TAXONOMY: dict[str, tuple[str, ...]] = {
    "mathematics": ("prime factorisation", "the binomial theorem", "eigenvalues", "conditional probability",
                    "Bayes' rule", "integration by parts", "the chain rule", "modular arithmetic",
                    "geometric series", "matrix inversion", "the Pythagorean theorem", "combinatorics",
                    "linear regression", "the central limit theorem", "complex numbers", "Fourier series",
                    "graph colouring", "proof by induction", "logarithms", "vector spaces"),
    "physics": ("Newton's second law", "conservation of momentum", "entropy", "the photoelectric effect",
                "special relativity", "quantum tunnelling", "Ohm's law", "electromagnetic induction",
                "projectile motion", "the Doppler effect", "thermal conductivity", "buoyancy",
                "angular momentum", "wave interference", "nuclear fission", "superconductivity",
                "black-body radiation", "friction", "the ideal gas law", "orbital mechanics"),
    "chemistry": ("covalent bonds", "oxidation states", "pH and buffers", "reaction kinetics", "Le Chatelier's principle",
                  "organic functional groups", "electronegativity", "stoichiometry", "catalysts",
                  "polymerisation", "the periodic table trends", "isotopes", "titration", "chirality",
                  "enthalpy of reaction", "electrochemical cells", "solubility rules", "hydrogen bonding"),
    "biology": ("photosynthesis", "mitosis and meiosis", "DNA replication", "natural selection", "the Krebs cycle",
                "enzyme inhibition", "the immune response", "protein folding", "gene expression", "CRISPR",
                "ecosystems and food webs", "cell membranes", "the nervous system", "hormones",
                "evolution of whales", "symbiosis", "the microbiome", "plant hormones", "epigenetics"),
    "medicine": ("type 2 diabetes", "hypertension", "antibiotic resistance", "vaccination schedules",
                 "migraine", "iron deficiency", "sleep apnoea", "the placebo effect", "statins",
                 "concussion recovery", "asthma inhalers", "vitamin D", "anxiety disorders", "long COVID",
                 "blood pressure readings", "cholesterol numbers", "ibuprofen and paracetamol"),
    "law": ("tenant rights", "non-compete clauses", "copyright fair use", "GDPR consent", "small claims court",
            "wills and probate", "employment contracts", "trademark registration", "liability waivers",
            "data protection officers", "the statute of limitations", "power of attorney",
            "open-source licences", "contract breach", "privacy policies", "intellectual property"),
    "finance": ("compound interest", "index funds", "inflation", "bond yields", "mortgage amortisation",
                "diversification", "the price-earnings ratio", "cash-flow statements", "depreciation",
                "capital gains tax", "options pricing", "credit scores", "exchange rates",
                "emergency funds", "retirement accounts", "venture capital", "the balance sheet", "budgeting"),
    "economics": ("supply and demand", "opportunity cost", "monetary policy", "the Phillips curve",
                  "comparative advantage", "game theory", "price elasticity", "market failure", "tariffs",
                  "GDP measurement", "universal basic income", "externalities", "monopolies",
                  "behavioural economics", "the tragedy of the commons", "minimum wage effects"),
    "history": ("the French Revolution", "the fall of Rome", "the Industrial Revolution", "the Cold War",
                "the Silk Road", "the printing press", "the Meiji Restoration", "the Ottoman Empire",
                "the civil rights movement", "the Renaissance", "World War I alliances", "the Marshall Plan",
                "the Aztec empire", "the partition of India", "the Hanseatic League", "the Black Death"),
    "geography": ("plate tectonics", "monsoons", "river deltas", "the water cycle", "desertification",
                  "glaciers", "time zones", "population density", "urbanisation", "coral reefs",
                  "the Ring of Fire", "climate zones", "the Amazon basin", "fjords", "permafrost"),
    "programming": ("recursion", "closures", "async/await", "memory leaks", "unit testing", "dependency injection",
                    "regular expressions", "hash maps", "race conditions", "garbage collection",
                    "REST API design", "SQL joins", "database indexes", "git rebase", "Docker containers",
                    "type hints", "error handling", "string formatting", "list comprehensions",
                    "event loops", "caching strategies", "pagination", "logging"),
    "computer science": ("Big-O notation", "Dijkstra's algorithm", "binary search trees", "dynamic programming",
                         "the halting problem", "public-key cryptography", "TCP congestion control",
                         "consensus algorithms", "B-trees", "compilers and parsers", "virtual memory",
                         "hash collisions", "sorting algorithms", "neural networks", "gradient descent",
                         "transformers and attention", "bloom filters", "load balancing", "CAP theorem"),
    "literature": ("Hamlet's soliloquy", "magical realism", "the unreliable narrator", "Pride and Prejudice",
                   "the hero's journey", "sonnet structure", "Moby-Dick symbolism", "dystopian fiction",
                   "stream of consciousness", "the Odyssey", "haiku", "Gothic novels", "foreshadowing",
                   "Dostoevsky's themes", "free verse", "satire"),
    "philosophy": ("utilitarianism", "the trolley problem", "Kant's categorical imperative", "free will",
                   "the ship of Theseus", "existentialism", "Stoicism", "the problem of induction",
                   "social contract theory", "Plato's cave", "moral relativism", "personal identity",
                   "the mind-body problem", "virtue ethics", "epistemic humility"),
    "psychology": ("cognitive dissonance", "confirmation bias", "attachment theory", "operant conditioning",
                   "the Dunning-Kruger effect", "working memory", "procrastination", "impostor syndrome",
                   "growth mindset", "burnout", "habit formation", "motivation", "emotional intelligence",
                   "the bystander effect", "grief"),
    "cooking": ("sourdough starters", "the Maillard reaction", "emulsions", "braising", "knife skills",
                "fermentation", "sous vide", "tempering chocolate", "meal prep", "gluten-free baking",
                "curry pastes", "risotto", "pickling", "smoke points of oils", "bread hydration"),
    "travel": ("packing light", "jet lag", "visa requirements", "rail passes", "travel insurance",
               "budget itineraries", "hostels", "road trips", "altitude sickness", "solo travel",
               "travelling with kids", "layovers", "local etiquette"),
    "health and fitness": ("progressive overload", "running cadence", "protein intake", "stretching",
                           "intermittent fasting", "heart-rate zones", "marathon training", "posture",
                           "sleep hygiene", "strength training for beginners", "recovery days", "hydration"),
    "business": ("pricing strategy", "customer churn", "OKRs", "go-to-market plans", "unit economics",
                 "cold emailing", "product-market fit", "hiring a first employee", "supply chains",
                 "negotiation", "SWOT analysis", "brand positioning", "remote team management",
                 "performance reviews", "SaaS metrics", "invoicing"),
    "marketing": ("SEO keywords", "email newsletters", "A/B testing", "landing pages", "social media calendars",
                  "influencer partnerships", "conversion funnels", "brand voice", "press releases",
                  "customer personas", "content marketing"),
    "engineering": ("beam deflection", "PID controllers", "heat exchangers", "tolerances and fits",
                    "signal filtering", "finite element analysis", "gear ratios", "power factor",
                    "reinforced concrete", "fatigue failure", "op-amps", "embedded firmware", "3D printing"),
    "environment": ("carbon capture", "solar panel efficiency", "heat pumps", "composting", "biodiversity loss",
                    "ocean acidification", "electric vehicle batteries", "recycling plastics",
                    "carbon footprints", "rewilding", "wind turbines", "water scarcity"),
    "music": ("chord progressions", "the circle of fifths", "syncopation", "music modes", "counterpoint",
              "mixing vocals", "guitar barre chords", "sight-reading", "the blues scale", "song structure"),
    "art and design": ("colour theory", "typography", "perspective drawing", "the golden ratio", "Impressionism",
                       "UX wireframes", "logo design", "composition rules", "watercolour techniques",
                       "Bauhaus", "accessibility in design"),
    "language learning": ("the subjunctive mood", "Japanese particles", "German cases", "phrasal verbs",
                          "Spanish ser and estar", "French liaison", "Mandarin tones", "spaced repetition",
                          "false friends", "irregular verbs", "Arabic root system"),
}

DOMAINS: tuple[str, ...] = tuple(TAXONOMY)
CONCEPTS: tuple[tuple[str, str], ...] = tuple((d, c) for d, cs in TAXONOMY.items() for c in cs)

#: Domains that carry checkable reasoning (what chain-of-thought extractors prefer).
REASONING_DOMAINS = ("mathematics", "physics", "chemistry", "programming", "computer science",
                     "economics", "finance", "engineering")

LANGUAGES = ("English", "Spanish", "French", "German", "Italian", "Portuguese", "Dutch", "Polish", "Turkish",
             "Japanese", "Korean", "Chinese (Simplified)", "Chinese (Traditional)", "Arabic", "Hindi",
             "Indonesian", "Vietnamese", "Thai", "Swedish", "Czech", "Ukrainian", "Greek", "Hebrew", "Romanian")
LANG_CODES = ("en", "es", "fr", "de", "it", "pt", "nl", "pl", "tr", "ja", "ko", "zh-CN", "zh-TW", "ar", "hi",
              "id", "vi", "th", "sv", "cs", "uk", "el", "he", "ro")

CODE_LANGS = ("Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "C#", "C++", "Kotlin", "Swift",
              "Ruby", "PHP", "SQL", "Bash", "Scala", "R", "Elixir", "Haskell", "Lua", "Dart")

CODE_TASKS = ("parses a CSV file and returns the rows as dictionaries", "reverses a linked list",
              "checks whether a string is a palindrome", "merges two sorted arrays",
              "debounces a function call", "retries an HTTP request with exponential backoff",
              "validates an email address", "computes the moving average of a stream",
              "finds the longest common prefix of a list of strings", "flattens a nested list",
              "counts word frequencies in a text file", "implements an LRU cache",
              "converts a timestamp between time zones", "paginates results from an API",
              "deduplicates records by a key", "reads a config file with defaults",
              "implements binary search", "serialises an object to JSON", "rate-limits calls per second",
              "walks a directory tree and sums file sizes", "detects a cycle in a graph",
              "generates a random password", "chunks a list into batches", "computes a SHA-256 checksum",
              "schedules a job every night at 2am", "parses command-line arguments",
              "uploads a file to object storage", "renders a template with variables",
              "implements a trie", "topologically sorts tasks", "formats a number as currency",
              "streams a large file line by line", "calculates the median of a list",
              "matches balanced parentheses", "throttles a queue of workers", "diffs two JSON documents")

CODE_ERRORS = ("TypeError: 'NoneType' object is not subscriptable", "IndexError: list index out of range",
               "KeyError: 'id'", "undefined is not a function", "segmentation fault (core dumped)",
               "cannot borrow `x` as mutable more than once at a time", "NullPointerException",
               "ModuleNotFoundError: No module named 'requests'", "ECONNREFUSED 127.0.0.1:5432",
               "error[E0382]: use of moved value", "SyntaxError: unexpected EOF while parsing",
               "RecursionError: maximum recursion depth exceeded", "CORS policy: No 'Access-Control-Allow-Origin'",
               "deadlock detected", "panic: runtime error: invalid memory address",
               "ValueError: could not convert string to float", "fatal: refusing to merge unrelated histories",
               "OOMKilled", "TS2322: Type 'string' is not assignable to type 'number'")

IDENTIFIERS = ("user_id", "order_total", "parse_row", "fetch_items", "handle_request", "config", "retry_count",
               "cache", "items", "payload", "response", "session", "records", "buffer", "queue", "result",
               "timestamp", "account", "invoice", "customer", "node", "graph", "tokens", "matrix", "batch")

FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emre", "Fatima", "Gustav", "Hana", "Ivan", "Jia", "Kofi", "Lena",
               "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas", "Uma", "Viktor", "Wen",
               "Ximena", "Yusuf", "Zoe", "Aiko", "Bruno", "Carmen", "Dmitri", "Elif", "Farah", "Giulia",
               "Hugo", "Ines", "Jonas", "Keiko", "Luca", "Maya", "Nils")

COMPANIES = ("Acme Telecom", "Bluebird Insurance", "Cobalt Bank", "Dunmore Energy", "Everleaf Grocers",
             "Fjord Airlines", "Greenway Utilities", "Harbor Health", "Ironclad Security", "Juniper Home",
             "Kestrel Cloud", "Lumen Fitness", "Meridian Travel", "Northwind Retail", "Orchid Cosmetics",
             "Pinecrest University", "Quarry Hardware", "Redwood Realty", "Solstice Solar", "Tidewater Logistics",
             "Umber Furniture", "Vantage Broadband", "Willow Pet Supplies", "Yarrow Books", "Zephyr Bikes")

PRODUCTS = ("router", "subscription", "order", "invoice", "account", "password", "delivery", "refund",
            "warranty", "booking", "membership", "data plan", "smart thermostat", "mobile app", "gift card",
            "prescription", "insurance claim", "loyalty points", "phone bill", "parcel")

ISSUES = ("hasn't arrived", "was charged twice", "won't connect", "keeps logging me out", "shows the wrong price",
          "was cancelled without notice", "is missing an item", "stopped working after the update",
          "can't be found", "needs to be changed", "arrived damaged", "is taking too long",
          "won't let me pay", "has the wrong address", "expired yesterday", "was declined")

DOC_TYPES = ("support ticket", "product review", "meeting transcript", "news article", "invoice", "contract clause",
             "job posting", "customer email", "incident report", "research abstract", "patient note",
             "real-estate listing", "call-centre transcript", "bug report", "insurance claim")

CITIES = ("Lisbon", "Osaka", "Nairobi", "Toronto", "Krakow", "Austin", "Medellin", "Hanoi", "Tbilisi", "Perth",
          "Montreal", "Seoul", "Cape Town", "Porto", "Edinburgh", "Bogota", "Istanbul", "Reykjavik", "Lyon",
          "Chennai", "Valencia", "Denver", "Tallinn", "Auckland")

ITEMS = ("apples", "notebooks", "tickets", "marbles", "cupcakes", "bricks", "stamps", "bottles", "pencils",
         "boxes", "seedlings", "coins", "tiles", "batteries", "books")

AUDIENCES = ("a five-year-old", "a high-school student", "a first-year undergraduate", "my grandmother",
             "a busy executive", "a software engineer", "a complete beginner", "an expert",
             "a nurse", "a product manager", "my team", "someone who hates maths")

TONES = ("friendly", "formal", "concise", "playful", "professional", "warm", "persuasive", "neutral",
         "enthusiastic", "empathetic")

WRITING_TASKS = ("a cover letter", "a wedding toast", "a product description", "a LinkedIn post",
                 "a birthday message", "an apology email", "a short story opening", "a poem",
                 "a blog post outline", "a tweet thread", "a speech introduction", "a resignation letter",
                 "a bio for my website", "meeting notes", "a recipe intro", "a limerick", "an essay outline",
                 "a haiku sequence", "a thank-you note", "a newsletter intro")

LABELS_SENTIMENT = ("positive", "negative", "neutral", "mixed")
LABELS_MODERATION = ("safe", "harassment", "hate", "self_harm", "sexual", "violence", "spam", "illicit")
LABELS_INTENT = ("billing", "technical", "cancellation", "shipping", "account_access", "feedback", "other")

#: Code snippets people paste (``IDENT``/``IDENT2`` are replaced by identifiers).
SNIPPETS = (
    "def IDENT(data):\n    result = []\n    for row in data:\n        result.append(row['IDENT2'])\n    return result",
    "function IDENT(items) {\n  return items.map(x => x.IDENT2).filter(Boolean);\n}",
    "for i in range(len(IDENT)):\n    if IDENT[i] == IDENT2:\n        del IDENT[i]",
    "SELECT IDENT, COUNT(*) FROM IDENT2 GROUP BY 1 ORDER BY 2 DESC;",
    "fn IDENT(v: Vec<i32>) -> i32 {\n    let s = v;\n    let t = v;\n    s.iter().sum()\n}",
    "const IDENT = await fetch(url).then(r => r.json());\nconsole.log(IDENT.IDENT2.length);",
    "class Store:\n    def __init__(self):\n        self.IDENT2 = None\n\n    def get(self):\n        return self.IDENT2['value']",
    "func IDENT(m map[string]int) int {\n\treturn m[\"IDENT2\"] + 1\n}",
    "public int IDENT(List<Integer> xs) {\n    return xs.get(xs.size());\n}",
    "IDENT = [x for x in IDENT2 if x]\nprint(IDENT[0])",
    "async def IDENT(session, url):\n    r = session.get(url)\n    return await r.json()",
    "df = pd.read_csv('IDENT2.csv')\ndf['IDENT'] = df['IDENT'].astype(float)\nprint(df.groupby('IDENT2').mean())",
    "while True:\n    IDENT = queue.get()\n    process(IDENT)\n",
    "import json\nwith open('IDENT2.json') as f:\n    IDENT = json.load(f)\nprint(IDENT['IDENT2'])",
)

# Second / third pick lists (disjoint halves), so two names or places in one prompt never coincide.
IDENTIFIERS_B = ("rows", "entry", "value", "key", "data", "index", "total", "user", "item")
FIRST_NAMES_B = ("Arjun", "Beatriz", "Chen", "Dalia", "Erik", "Femi", "Greta", "Hiro", "Isla", "Jamal", "Kira", "Leo")
FIRST_NAMES_C = ("Mina", "Noah", "Olga", "Pablo", "Rania", "Sven", "Tara", "Ugo", "Vera", "Will", "Yara", "Zaid")
CITIES_B = ("Dakar", "Quito", "Bergen", "Kyoto", "Lima", "Malmo", "Accra", "Riga", "Hobart", "Oaxaca")
PRODUCTS_B = ("e-bill", "voucher", "plan upgrade", "return label", "cloud backup", "SIM card", "profile", "payment method")
