#!/usr/bin/env python3
"""Writes bench/agreement_corpus.jsonl: the texts bench/agreement.py scores with fp32, f16 and int8 models.

    python3 bench/agreement_corpus.py [--out bench/agreement_corpus.jsonl]

One JSON object per line: {"text", "labels", "group"}. The same bytes every run (one seeded
random.Random, no network), so the committed file can be regenerated and diffed. The texts are
made up, but they cover what quantisation could upset: survey answers (bench/survey.py) and
short texts (5-20 words), whose few tokens leave rounding errors nowhere to average out, and
long ones (150-400 words), some dense with numbers and hyphenated words so that they pass 512
word pieces and zeroshot truncates them. Six label sets of five labels each: bench/agreement.py
makes one CLI call per label set and mode. Texts hold no newlines (the CLI reads one per line)
and labels no commas (--labels splits on them).
"""

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # no __pycache__ next to the imported scripts
sys.path.insert(0, str(HERE))
from survey import answer as survey_answer  # noqa: E402

SEED = 2027

LABEL_SETS = {
    "feedback": ["pricing", "onboarding", "support", "bug report", "praise"],
    "news": ["politics", "sports", "economy", "science", "entertainment"],
    "sentiment": ["positive", "negative", "neutral", "angry", "grateful"],
    "intent": ["refund request", "cancellation", "question", "complaint", "compliment"],
    "topic": ["health", "travel", "food", "technology", "education"],
    "emotion": ["joy", "sadness", "fear", "surprise", "anger"],
}

# Texts per label set and group: 6 x (35 + 35 + 25 + 10) = 630 texts, about 500 KB.
COUNTS = {"survey": 35, "short": 35, "long": 25, "long-dense": 10}

# theme -> (subjects, predicates): sentences are "<opener> <subject> <predicate>."
THEMES = {
    "politics": (["the senate", "the new coalition", "the city council", "the prime minister", "voters in the north",
                  "the opposition leader"],
                 ["passed the budget after a long debate", "promised lower taxes for small firms",
                  "lost the vote by a narrow margin", "called for an early election", "refused to answer questions"]),
    "sports": (["the home team", "our goalkeeper", "the marathon runners", "the young striker", "the coach",
                "the tennis champion"],
               ["won the final in extra time", "broke the national record", "was injured during training",
                "signed a three year contract", "lost badly on a rainy afternoon"]),
    "economy": (["the central bank", "the stock market", "inflation", "the housing market", "local shops",
                 "exporters"],
                ["raised interest rates again", "fell sharply after the report", "slowed for the third month",
                 "cut hundreds of jobs", "recovered faster than expected"]),
    "science": (["the research team", "a new telescope", "the vaccine trial", "the laboratory", "physicists",
                 "the climate model"],
                ["found water on a distant moon", "published surprising results", "measured the tiny particles",
                 "needed more funding", "confirmed the earlier theory"]),
    "entertainment": (["the new film", "the band", "the streaming series", "the festival", "the actress",
                       "the comedy show"],
                      ["sold out in minutes", "received terrible reviews", "was the talk of the summer",
                       "won three awards", "was cancelled after one season"]),
    "product": (["the mobile app", "the dashboard", "the pricing page", "the invoice export", "the support team",
                 "the onboarding tutorial"],
                ["crashed twice this morning", "explained everything clearly", "costs more than it should",
                 "answered within minutes", "was hard to find"]),
    "health": (["my doctor", "the clinic", "the new diet", "the hospital", "regular exercise", "the nurse"],
               ["helped me sleep better", "kept me waiting for hours", "lowered my blood pressure",
                "prescribed a stronger medicine", "made me feel much stronger"]),
    "travel": (["the flight", "our hotel", "the train to the coast", "the tour guide", "the airport", "the ferry"],
               ["was delayed by six hours", "had a wonderful view of the sea", "lost our luggage",
                "showed us the old town", "was cheaper than we expected"]),
    "food": (["the restaurant", "the soup", "the bakery on the corner", "the chef", "the pizza", "the coffee"],
             ["was cold when it arrived", "tasted amazing", "closed early on sunday", "used fresh local vegetables",
              "was far too salty"]),
    "feelings": (["my sister", "the whole family", "my best friend", "everyone in the office", "our neighbour",
                  "the children"],
                 ["cried when they heard the news", "could not stop laughing", "was terrified of the storm",
                  "was shocked by the letter", "was furious about the decision"]),
}

OPENERS = ["", "", "Yesterday", "Honestly,", "As usual", "Apparently", "To our surprise", "Last week",
           "I think", "Sadly", "Finally", "According to the report"]

FILLERS = ["Nobody expected that.", "It was the same story as last year.", "I will tell you more later.",
           "Some people disagree, of course.", "That is all for now.", "We will see what happens next."]

# Number-heavy and hyphenated phrases: several word pieces per word, to push long texts past 512.
DENSE = ["about 14.5% of 2,300 respondents", "co-founder", "e-mail", "re-evaluated", "Q3-2024",
         "$1,250.99", "ISO-8601", "x86_64", "COVID-19", "well-being", "3.14159", "non-refundable",
         "up-to-date", "No. 42/7b", "state-of-the-art", "10:45pm", "anti-inflammatory", "#4711"]


def sentence(rng, theme=None):
    """One plausible sentence from a theme (random when None)."""
    subjects, predicates = THEMES[theme or rng.choice(sorted(THEMES))]
    opener = rng.choice(OPENERS)
    subject = rng.choice(subjects)
    if opener:
        subject = f"{opener} {subject}"
    text = f"{subject} {rng.choice(predicates)}."
    return text[0].upper() + text[1:]


def short_text(rng):
    """5 to 20 words: one or two sentences, sometimes cut to a fragment."""
    words = " ".join(sentence(rng) for _ in range(rng.choice([1, 1, 2]))).split()
    n = rng.randint(5, min(20, len(words))) if len(words) >= 5 else len(words)
    text = " ".join(words[:n])
    return text if len(text.split()) >= 5 else text + " and that was the whole story."


def long_text(rng, dense):
    """150 to 400 words around one or two themes; dense ones are stuffed with many-piece words."""
    target = rng.randint(320, 400) if dense else rng.randint(150, 400)
    themes = rng.sample(sorted(THEMES), 2)
    words = []
    while len(words) < target:
        if dense and rng.random() < 0.25:
            part = f"{rng.choice(DENSE)} {rng.choice(DENSE)} ({rng.choice(DENSE)}), {rng.choice(DENSE)};"
        elif rng.random() < 0.15:
            part = rng.choice(FILLERS)
        else:
            part = sentence(rng, rng.choice(themes) if rng.random() < 0.8 else None)
        words.extend(part.split())
    text = " ".join(words[:target])
    return text if text.endswith(".") else text.rstrip(",;") + "."


def survey_text(rng):
    """A survey answer from bench/survey.py (7 to 58 words)."""
    return survey_answer(rng)


MAKERS = {
    "survey": survey_text,
    "short": short_text,
    "long": lambda rng: long_text(rng, dense=False),
    "long-dense": lambda rng: long_text(rng, dense=True),
}


def corpus(seed=SEED):
    """Every record, label set by label set, groups interleaved so any prefix mixes lengths."""
    rng = random.Random(seed)
    records = []
    for labels in LABEL_SETS.values():
        groups = [g for g, n in COUNTS.items() for _ in range(n)]
        rng.shuffle(groups)
        records.extend(dict(text=MAKERS[g](rng), labels=labels, group=g) for g in groups)
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "agreement_corpus.jsonl")
    args = ap.parse_args()
    records = corpus()
    assert all("\n" not in r["text"] and "\r" not in r["text"] for r in records)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    args.out.write_text("\n".join(lines) + "\n")
    words = sorted(len(r["text"].split()) for r in records)
    print(f"{args.out}: {len(records)} texts, {words[0]}-{words[-1]} words, "
          f"{args.out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
