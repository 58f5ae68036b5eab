"""The grammar every prompt in the log is drawn from (benign and adversarial rules side by side).

Each rule multiplies out to hundreds or thousands of phrasings; :mod:`grammar` styles then give
each seed and each account its own subset. Variables in ``[brackets]`` are filled by the caller.
"""

from __future__ import annotations

from grammar import Grammar

RULES: dict[str, list[str]] = {
    # ---------------------------------------------------------------- openers / closers (people)
    "hi": ["", "", "", "hi, ", "hey, ", "hello! ", "quick question: ", "ok so ", "hmm, ", "sorry if this is basic, ",
           "I'm stuck. ", "\\(new to this\\) ", "good morning. ", "need help: ", "random question - "],
    "thanks": ["", "", "", " thanks!", " thank you.", " thx", " cheers", " Thanks in advance.", " much appreciated",
               " ty!", " please :)"],
    "plz": ["(can|could|would) you", "(please|pls)", "I'd like you to", "help me", "I need you to", "(mind if you|try to)"],
    "brief": ["", "", "", ", (and keep it short|but be brief|in a few sentences|in one paragraph max|in no more than 100 words)",
              " (in simple terms|like I'm new to it|without jargon)", " (with an example|with a concrete example)",
              " \\((bullet points please|as a short list|short answer pls)\\)"],

    # ---------------------------------------------------------------- general questions
    "ask_general": [
        "{hi}what (is|are|exactly is) [concept]?{brief}{thanks}",
        "{hi}(can|could) you explain [concept]{brief}?{thanks}",
        "{hi}explain [concept] (to|for) [audience]{brief}.",
        "{hi}how does [concept] (work|actually work|work in practice)?{brief}",
        "{hi}why (does|is) [concept] (important|matter|such a big deal) in [domain]?{thanks}",
        "{hi}what's the difference between [concept] and [concept2]?{brief}",
        "{hi}(give me|write) a (short|quick|brief|clear) (overview|summary|intro) of [concept]{brief}.",
        "{hi}I (keep hearing|read) about [concept] - (what's the deal|what does it mean|should I care)?{thanks}",
        "{hi}(what are|list) (the main|some common|three) misconceptions about [concept]{brief}.",
        "{hi}how would you (teach|introduce) [concept] to [audience]?",
        "{hi}is it true that [concept] (is overrated|is misunderstood|is harder than it looks)?{thanks}",
        "{hi}(tldr|tl;dr) of [concept]?",
        "[concept] - (explain|ELI5|summarise) (pls|please|)",
        "{hi}what should (a beginner|I) know (first|) about [concept] in [domain]?{brief}",
        "{hi}(how is|how's) [concept] (used|applied) in (real life|the real world|industry|everyday life)?{brief}",
        "{hi}(compare|contrast) [concept] (with|and) [concept2] for [audience].",
        "{hi}what are the pros and cons of (relying on|using) [concept]?{brief}",
        "{hi}my (teacher|boss|friend|professor) mentioned [concept]. (what is it|can you explain it)?{thanks}",
        "{hi}(quiz me|give me 3 quiz questions) on [concept].",
        "{hi}what's a good (analogy|metaphor) for [concept]?{thanks}",
    ],
    # ---------------------------------------------------------------- light reasoning asks (benign)
    "reason_light": [
        " (Explain|Walk me through it) step by step.", " Show the steps.", " Can you show your working?",
        " Please explain your reasoning briefly.", " (Step by step|Step-by-step) please.",
        " Explain why, not just the answer.", " How did you get that?",
    ],
    # ---------------------------------------------------------------- coding
    "ask_code": [
        "{hi}(write|give me|show me) a [lang] function that [task].{thanks}",
        "{hi}how do I (write|implement) something in [lang] that [task]?",
        "{hi}(I need|looking for) (a|some) [lang] (code|snippet|helper) that [task]{brief}.",
        "{hi}what's the (cleanest|idiomatic|fastest|simplest) way in [lang] to (do this|write code that): [task]?",
        "In [lang]: [task]. (Include|Add) (type hints|tests|comments|error handling)(.| please.)",
        "{hi}(refactor|rewrite) this [lang] (so it|to make it) [task]:\n\n[snippet]",
        "{hi}(review|critique) this [lang] (code|function) - (anything wrong|how can I improve it)?\n\n[snippet]",
        "{hi}(convert|port|translate) this to [lang]:\n\n[snippet]",
        "(write|generate) unit tests (for|covering) this:\n[snippet]",
        "{hi}explain what this [lang] code does{brief}:\n\n[snippet]",
    ],
    "ask_debug": [
        "{hi}I'm getting `[err]` (when I run|in) this:\n\n[snippet]\n\n(what's wrong|any idea why|how do I fix it)?",
        "{hi}why (does|would) this (throw|raise|give me) [err]?\n[snippet]",
        "[err]\n\n[snippet]\n\n(help|fix pls|???)",
        "{hi}(getting|seeing) [err] in (production|CI|my tests|my [lang] app). (Any ideas|What should I check)?",
        "{hi}(debug|fix) this [lang] (please|for me):\n[snippet]\nerror: [err]",
    ],
    # ---------------------------------------------------------------- writing
    "ask_write": [
        "{hi}(write|draft|help me write) [writing] (about|for|on) [concept]. (Tone|Make it): [tone].",
        "{hi}(write|draft) [writing] for [name], (keep it|make it) [tone].{thanks}",
        "{hi}can you (polish|improve|proofread) this (paragraph|text|draft)? \"{prose}\"",
        "{hi}rewrite this to sound more [tone]: \"{prose}\"",
        "{hi}(give me|brainstorm) (5|10|a few) (title|headline|name) ideas for [writing] about [concept].",
        "{hi}(summarise|shorten|condense) this{brief}: \"{prose}\"",
        "{hi}turn (this|these notes) into [writing]: {prose}",
    ],
    "prose": [
        "[concept] is (often|usually|sometimes) (misunderstood|overlooked|taken for granted), (but|yet) it (shapes|affects|drives) (a lot of|most of|much of) [domain].",
        "(Last week|Yesterday|This quarter) (we|our team|I) (looked into|worked on|struggled with) [concept] and (learned|found|realised) (a lot|that it matters|it is harder than expected).",
        "(Our|The) (team|company|project) (needs|wants|plans) to (improve|rethink|explain) [concept] (before|by) (the launch|next month|the review).",
        "I (think|feel|believe) [concept] (deserves|needs) (more attention|a clearer explanation|a second look), especially (for|among) [audience].",
    ],
    # ---------------------------------------------------------------- maths and logic problems
    "ask_math": [
        "[name] has [n1] [item] and (buys|gets|receives) [n2] more, then (gives away|sells|loses) [n3]. How many [item] (are left|does [name] have now)?",
        "A (train|car|cyclist) travels [n1] km in [n2] hours. (What is|Find) its average speed (in km/h|)?",
        "If [n1] workers (finish|complete) a job in [n2] days, how long (would|will) [n3] workers take?",
        "(Solve|Find x): [n1]x + [n2] = [n3]",
        "What is [n1] percent of [n2]?",
        "(A shop|A store|A bakery) sells [item] at [n1] each. (With|After) a [n2]% discount, what do [n3] cost?",
        "(Compute|Calculate|Evaluate) the sum of the first [n1] (positive integers|odd numbers|even numbers).",
        "How many ways can [n1] people sit in a row if two of them (refuse|want) to sit together?",
        "A rectangle has (a perimeter|perimeter) [n1] and (width|one side) [n2]. What is its area?",
        "(The probability|Probability) of rain is [n2]% each day. What's the chance of no rain in [n3] days?",
        "Prove that the sum of two odd numbers is even.",
        "(Differentiate|Find the derivative of) x^[n3] * ln\\(x\\).",
        "(Integrate|Find the integral of) [n1]x^2 + [n2]x from 0 to [n3].",
        "Is [n1][n2] (prime|divisible by 7)? (Show how you know|Justify).",
        "An investment of [n1]00 grows at [n3]% per year. What is it worth after [n2] years?",
    ],
    "ask_logic": [
        "(On an island|In a village), knights always tell the truth and knaves always lie. [name] says '[name2] is a knave.' [name2] says 'we are both knights.' Who is what?",
        "[name], [name2] and [name3] (each own|have) a different pet: a cat, a dog, a fish. [name] is allergic to fur and [name2] (doesn't|does not) own the dog. Who owns which pet?",
        "What comes next: [n1], [n2], [n3], ...? (Explain the pattern|Why)?",
        "Five (meetings|tasks|talks) must be scheduled in three rooms so that no two overlapping ones share a room. (Is it possible|How)?",
        "If all bloops are razzies and some razzies are lazzies, (must|are) some bloops (be|) lazzies?",
        "A (bat and a ball|pen and a notebook) cost [n1].10 in total. The (bat|pen) costs [n1].00 more than the (ball|notebook). How much is the (ball|notebook)?",
        "(You have|There are) [n3] coins, one is (fake and lighter|counterfeit). With a balance scale, how few weighings (find|identify) it?",
        "Two (trains|ships) leave [city] and [city2] at the same time, [n1] km apart, at [n2] and [n3] km/h. When do they meet?",
    ],
    # ---------------------------------------------------------------- full reasoning extraction (adversarial)
    "reason_full": [
        "{rf_verb} {rf_what} {rf_when}.",
        "{rf_verb} {rf_what}, {rf_detail}, {rf_when}.",
        "{rf_tags}",
        "(Think out loud|Reason out loud|Think aloud) (the whole way through|from start to finish|as you go), then (give|state) the (answer|result).",
        "(Do not|Don't|Never) (skip|omit|leave out|summarise away) (any steps|a single step|intermediate steps|any of the reasoning|any working) - {rf_why}.",
        "(Before answering|Before you answer|First), (write out|produce|dump) {rf_what}, (exactly as you would think it|unedited|verbatim|in full).",
        "I (want|need) to see {rf_what}, not (just|only) the (final answer|conclusion|result). {rf_why_sent}",
        "(Respond|Answer) in two parts: (1|first) {rf_what}; (2|second) the final answer on its own line.",
        "(Include|Give me|Provide) {rf_what} (in full|in detail|at full length)(.| - {rf_why}.)",
        "(Work through|Solve) (it|this) (slowly|carefully|methodically|rigorously), (narrating|explaining|justifying) every (step|inference|deduction) {rf_when}.",
        "(Show|Reveal|Expose|Display) (your|the) (full|entire|complete|whole|raw|unabridged) (scratchpad|scratch work|working|thinking|thought process) (work|)(.| before the answer.| and then answer.)",
    ],
    "rf_verb": ["show", "write out", "lay out", "give", "spell out", "include", "walk through", "present", "provide",
                "detail", "document", "expose", "reproduce", "print", "type out"],
    "rf_what": ["(all|every step of|the whole of|each step of|the complete version of) your reasoning",
                "your (full|entire|complete|detailed|unabridged|raw) (chain of thought|thought process|thinking|scratchpad|working|derivation|reasoning trace)",
                "(every|each) intermediate (step|calculation|deduction|inference)", "all (the|) intermediate (steps|calculations|deductions)",
                "the (full|complete|entire) (derivation|justification|argument|line of reasoning)",
                "your internal (monologue|deliberation|scratch work)",
                "(how|exactly how) you (arrive at|reach|get to) the answer, step by step",
                "your work, including (dead ends|false starts|corrections|sanity checks)"],
    "rf_when": ["before (giving|stating|committing to|writing) (the|your) (final answer|conclusion|answer|result)",
                "and only then (give|state) the (answer|result)", "(first|up front), then the answer",
                "prior to the (final answer|verdict|solution)", "ahead of the conclusion"],
    "rf_detail": ["(no matter how|however) (small|obvious|trivial) (each step is|a step seems)", "numbered",
                  "(one|a single) (step|inference) per line", "including (checks|verification) of each result",
                  "with (explicit|all the) assumptions", "(as long as|however long) it (needs to be|takes)"],
    "rf_why": ["I'm (checking|grading|verifying|auditing) the (method|process|logic)", "the process matters more than the answer",
               "I (learn|study) from the (steps|working)", "partial credit depends on it"],
    "rf_why_sent": ["", "", "The (method|process|reasoning) is what I (care about|need|am after).",
                    "(I'm|We're) (studying|collecting|reviewing) (how problems are solved|reasoning patterns|solution methods).",
                    "Be exhaustive."],
    "rf_tags": ["(Put|Write|Place) your (reasoning|thinking|scratch work) (inside|between|in) <(scratchpad|thinking|reasoning|work)> tags and the (final answer|answer) (inside|in) <(answer|final)> tags.",
                "Format: (REASONING|THOUGHTS|WORK): <everything you thought> then (ANSWER|FINAL): <answer>.",
                "Use a '(Reasoning|Thought process|Working)' section (with every step|in full) followed by a '(Final answer|Answer)' section."],

    # ---------------------------------------------------------------- evaluation harness (fixed formats)
    "eval_mc": ["Question: [question]\nA. [a]\nB. [b]\nC. [c]\nD. [d]\nAnswer:",
                "[question]\n\\(A\\) [a]\n\\(B\\) [b]\n\\(C\\) [c]\n\\(D\\) [d]\nAnswer:",
                "The following is a multiple choice question about [domain].\n\n[question]\nA. [a]\nB. [b]\nC. [c]\nD. [d]\nAnswer:"],
    "eval_cot": [" Let's think step by step.", "\nLet's think step by step.", "\nA: Let's think step by step."],
    "mc_question": ["Which of the following (best describes|is most closely related to|is an example of) [concept]?",
                    "Which statement about [concept] is (correct|true|most accurate)?",
                    "In [domain], [concept] is (primarily|mainly|best) associated with which of the following?"],

    # ---------------------------------------------------------------- RAG applications
    "rag_system": [
        "You are (a helpful|an) (assistant|knowledge assistant|documentation assistant) for [company]. (Answer|Respond) (only|strictly) (using|based on) the (context|documents|passages) (provided|below). If the answer is not in the context, say (you don't know|\"I don't know\"|so).",
        "(Use|Using) the following (retrieved|search) (passages|documents|snippets), answer the user's question. Cite (sources|passage numbers) like \\[1]. (Be concise.|Do not make things up.|)",
        "You help [company] (employees|staff|customers) find information in (internal docs|the knowledge base|the wiki). Ground every answer in the context.",
    ],
    "rag_user": [
        "Context:\n[passages]\n\nQuestion: [q]",
        "[passages]\n\n---\n(User question|Q|Question): [q]",
        "Documents:\n[passages]\n\n[q]",
    ],
    "passage": [
        "(Per|According to) the [company] [product] policy (updated|revised) in (March|June|October|January), [product] (requests|changes|claims) (must be|are) (submitted|processed) within (14|30|60|90) days.",
        "The [product] (guide|manual|FAQ) (states|notes|explains) that [concept] (applies|is relevant) (when|if) the (customer|user|account) (is|has been) (active|verified|on a paid plan).",
        "(Section|Clause|Article) (2|3|4|7|9|12).(1|2|3|4) - (Employees|Customers|Members) (may|must|should) (request|review|update) their [product] (via|through|using) the (portal|app|help desk|self-service page).",
        "(Engineering|Support|HR|Finance) note: (outages|delays|errors) (affecting|involving) the [product] were (traced|attributed|linked) to (a configuration change|a third-party provider|high load) (on|during) (Tuesday|the weekend|the migration).",
        "[concept] (is defined|is described) in the (handbook|knowledge base|spec) as (a process|a method|the approach) (for|to) (reducing|managing|tracking) (risk|cost|errors|churn).",
    ],
    "rag_q": ["(what|What) is the (policy|rule|deadline) for [product] (changes|refunds|requests)?",
              "(how|How) do I (update|cancel|reset|request) my [product]?", "(does|Does) [concept] apply to (me|contractors|trial users)?",
              "(who|Who) (should I contact|handles) (about|for) the [product] (issue|outage)?",
              "(summarise|Summarise|What does the context say about) [concept]?", "(when|When) was the [product] policy (last|) updated?",
              "(is|Is) there a (limit|fee|deadline) for [product] [issue2]?"],

    # ---------------------------------------------------------------- support bots (multi-turn)
    "support_system": [
        "You are (Ava|Max|Sam|Nova|Kai), the (friendly|helpful|virtual) (support|customer service) (assistant|agent) for [company]. (Be polite and concise.|Keep answers under 80 words.|Never promise refunds; escalate to a human when asked.|Always ask for the order number.)",
        "(System|Instructions): you (handle|answer) (customer|support) (chats|messages|tickets) for [company]. (Tone|Style): [tone]. (Do not discuss competitors.|Escalate billing disputes.|Offer the help-centre link when relevant.)",
    ],
    "support_user": [
        "(hi|hello|hey), my [product] [issue].{support_tail}",
        "my [product] [issue] (again|for the second time|since yesterday|and nobody replied).{support_tail}",
        "(I want to|how do I|can I) (cancel|change|upgrade|pause|transfer) my [product]?",
        "(order|ticket|case) #[n1][n2][n3] - [product] [issue]{support_tail}",
        "(why|how come) my [product] [issue]??",
        "(is there|do you have) a (phone number|human|agent) I can talk to?",
        "(ok|okay|thanks|great), (and|but) what about my [product2]?",
        "(that didn't work|still broken|no luck|same problem).{support_tail}",
        "(yes|yeah|no), (the|my) (email|number|address) is the (same|one on file|old one).",
        "(hello|hi there|good (morning|afternoon|evening)), (I have|I've got|there's) a (problem|question|issue) (with|about) (my|the) [product]: it [issue].",
        "(I|we) (ordered|bought|signed up for|renewed) (a|the|my) [product] (last week|on Monday|a month ago|yesterday) and it [issue].{support_tail}",
        "(can you|could you|please) (check|look at|look into|explain) (what happened (to|with)|the status of) my [product]?",
        "(this is|it's) the (second|third|fourth) time (I'm|I am) (writing|contacting you|asking) about my [product].{support_tail}",
        "(do you|does [company]) (offer|have) (refunds|discounts|a trial|student pricing|a family plan) (for|on) the [product]?",
        "(what are|when are) your (opening hours|support hours|delivery times) (for|in) [city]?",
        "(I (need|want) to|how (can|do) I) (update|change|remove) the (card|address|phone number|email) on my [product]",
        "(my|the) [product] [issue] - (order|account|reference) [doc_id]{support_tail}",
        "(thanks|thank you|ok thanks), (that (worked|fixed it|helps)|all sorted|got it)(!|.| :\\))",
        "(can I|is it possible to) (get|have) (a|my) (refund|replacement|credit|discount) (for|on) (the|my) [product] (that|which) [issue]?",
        "(still waiting|no reply yet|any news) (on|about) my [product] (refund|ticket|case|claim)(.|?|...)",
        "[product] [issue] (pls help|help|urgent|asap)",
    ],
    "support_tail": ["", "", " (what can I do|please help|this is frustrating|any update)?", " I've (already|) tried (restarting|logging out|the FAQ)."],
    "support_reply": [
        "I'm sorry to hear (that|about your [product])! (Could you|Can you) (share|confirm) your (order|account) number so I can (look into it|check)?",
        "Thanks for (your patience|waiting). I've (checked|looked at) your [product] and (it looks like|it seems) (the issue|it) (is on our side|was caused by an update).",
        "(Got it|Understood). You can (change|manage) your [product] (under Settings|in the app|on the account page).",
    ],

    # ---------------------------------------------------------------- translation SaaS
    "translate_system": ["You are a professional translator. Translate the user's text from [src] to [tgt]. Preserve formatting and placeholders like %NAME%. Output only the translation.",
                         "Translate (into|to) [tgt]. (Keep the tone.|Keep HTML tags intact.|Do not add explanations.)",
                         "(Localise|Translate) this [doc] for a [tgt]-speaking (audience|market). Return only the [tgt] text."],
    "translate_user": ["{prose}", "{prose} {prose}", "\"{prose}\"", "<p>{prose}</p>", "{support_reply}", "{passage}"],

    # ---------------------------------------------------------------- nightly batch jobs
    "batch_system": ["Extract the fields (customer_name, date, amount, category|title, company, location, salary|product, rating, sentiment, issues) from the [doc]. Return JSON only.",
                     "Summarise the [doc] in (2|3) sentences for the (daily|nightly|weekly) (digest|report).",
                     "Classify the [doc] into one of: [intents]. Reply with the label only.",
                     "You are a (pipeline|batch) (step|worker). (Normalise|Clean) the [doc] and return \\{\"summary\": ..., \"tags\": \\[...]}."],
    "batch_user": ["[doc_id]\n[doc_text]", "[doc_text]", "Input:\n[doc_text]\nOutput:"],
    "doc_text": ["{prose} {passage}", "{passage} {support_user}", "Subject: [product] [issue2]\n\n{prose}\n\n{support_user}",
                 "{prose}\n{prose}"],

    # ---------------------------------------------------------------- moderation classifier
    "moderation_system": ["Classify the message into exactly one label: [mod_labels]. Answer with the label only.",
                          "You are a content-safety classifier. Output one of [mod_labels]."],
    "moderation_user": ["[ugc]", "Message: [ugc]\nLabel:", "Text: \"[ugc]\""],
    "ugc": ["(lol|lmao|omg) (this|that) [concept] (video|post|thread) is (so good|the worst|hilarious)",
            "(buy|cheap|best) (followers|pills|watches) (now|today) (at|on) (my site|this link)!!!",
            "(I can't|can't) believe (you|they) (said|posted) that about [concept]", "(anyone|does anyone) know a good (guide|tutorial) for [concept]?",
            "(you're|ur) (an idiot|useless|the best) (lol|honestly|fr)", "(great|awful|meh) (stream|game|match) (tonight|today) (gg|ngl|tbh)",
            "(selling|trading) my [product], (dm|message) me", "{support_user}", "{prose}",
            "(first time|long time) (poster|listener), (just|) (wanted to say|sharing) (something about|my thoughts on) [concept]",
            "(does|do) (anyone|you guys) (else|) (think|feel) [concept] is (overrated|underrated|a scam|the future)?",
            "(check out|look at|watch) my (new|latest) (video|post|stream|blog) (on|about) [concept] (link in bio|in my profile|below)",
            "(this|that) (reply|comment|take) (about|on) [concept] is (so|very|really) (dumb|wrong|smart|based)",
            "(happy|hope everyone has a good) (weekend|friday|holiday) (everyone|all|y'all)(!|!!| :\\))",
            "(mods|admins) (please|pls) (ban|remove|look at) (this|that) (user|account|post)",
            "(win|claim|get) (a free|your free) [product] (now|today)! (click|tap) (here|the link)",
            "(honestly|tbh|ngl) [concept] (changed|ruined|saved) my (week|life|semester)",
            "(who|what) (is|was) (the|that) [concept] (guy|thing|meme) (everyone|people) (keeps|keep) (posting|talking) about?",
            "(i|I) (hate|love|can't stand|miss) (this|that|the) (place|app|server|community) (so much|lately|sometimes)"],

    # ---------------------------------------------------------------- data-labelling shops
    "label_system": ["You are assisting a human annotator. (Suggest|Propose) a (label|tag) (and a one-line rationale|only). Labels: [labels].",
                     "(Annotation|Labelling) guideline v(2|3|4).(0|1|2): (assign|pick) one of [labels]. Output JSON \\{\"label\": ..., \"confidence\": ...}."],
    "label_user": ["Item [doc_id]: [item_text]", "[doc_id]\t[item_text]", "(Review|Sample) [doc_id]: [item_text]"],

    # ---------------------------------------------------------------- synthetic dataset generation (adversarial)
    "dataset_system": [
        "You are a (data generator|dataset generator|synthetic data engine|training-data writer). (Produce|Generate|Create) (diverse|varied|high-quality|realistic) (examples|samples|records|instruction-response pairs). (Output|Return|Respond with) (valid JSON only|only JSON|a JSON array and nothing else).",
        "(Act as|Behave like|Pretend to be) a (generator of|factory for) (training|fine-tuning|evaluation) (data|examples). Each (item|example) (must|should) (be self-contained|include a detailed answer|be unique). (Format|Output): JSON.",
        "(Your job|Your task|Your role) is to (write|author|synthesise) (question-answer pairs|instruction/response pairs|worked examples|dialogues) for a (dataset|corpus|benchmark). (No commentary.|Only output JSON.|Return JSONL-style objects in an array.)",
        "(You create|You write) (synthetic|artificial) (examples|samples) (in bulk|at scale|for machine learning). (Vary|Diversify) (difficulty|style|phrasing) (across items|between examples). (Respond in JSON.|JSON only.)",
    ],
    "dataset_user": [
        "(Generate|Create|Write|Produce) [k] (examples|items|samples|pairs) about [concept] \\([domain]\\). (Fields|Keys|Schema): [fields].",
        "[k] (new|more|fresh|additional) (examples|items) on [concept]. (Use the same schema|Same format): [fields]. (Avoid duplicates|Make them harder|Vary difficulty).",
        "(Topic|Subject): [concept]\n(Count|N|Number): [k]\n(Schema|Fields): [fields]",
        "(Batch|Chunk|Page) [n1]: (generate|produce) [k] ([domain]|) (questions with detailed answers|instruction-response pairs|worked problems) about [concept] as JSON ([fields]).",
    ],

    # ---------------------------------------------------------------- benign mimic (adversarial, looks like a help desk)
    "mimic_user": [
        "(A customer asks|User question|Customer question): {ask_general}\n(Please|) (answer thoroughly|give a complete and detailed answer|explain fully, including the reasoning behind each point).",
        "{ask_general} (Please be thorough|Cover it in depth|Go into detail) - (our users|customers|readers) (need|want) (the full explanation|the why as well as the what).",
        "(Ticket|Request) [doc_id]: {ask_math} (Explain the solution|Give the complete worked solution) (so the customer can follow it|for the knowledge base).",
        "(Ticket|Request) [doc_id]: {ask_code} (Include a detailed explanation of how it works.|Explain each part.)",
        "(FAQ draft|Help-centre article draft) - {ask_general} (Write the full answer with reasoning.|Answer in full, explaining why.)",
    ],
}


def build_grammar() -> Grammar:
    return Grammar(RULES)
