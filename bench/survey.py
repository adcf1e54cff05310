#!/usr/bin/env python3
"""Prints N survey-length answers (5 to 60 words), one per line, the same every run.

Usage: python3 bench/survey.py [N]   (default 1000)
"""
import random
import sys

OPENERS = ["I loved", "Honestly I disliked", "We found", "My team thinks", "The new", "Not sure about", "Great job on"]
SUBJECTS = ["the onboarding", "the pricing page", "support", "the mobile app", "the invoice export", "search",
            "the dashboard", "billing", "the signup form", "notifications", "the API docs"]
DETAILS = ["it was confusing", "it took far too long", "the staff answered within minutes", "it crashed twice",
           "the colours are hard to read", "it is cheaper than the competition", "a refund never arrived",
           "the tutorial explained everything", "I could not find the cancel button", "it just works",
           "the prices went up again", "the new layout is much cleaner", "emails arrive hours late"]


def answer(rng):
    words = [f"{rng.choice(OPENERS)} {rng.choice(SUBJECTS)}, but {rng.choice(DETAILS)}."]
    while rng.random() < 0.55 and len(" ".join(words).split()) < 50:
        words.append(f"Also {rng.choice(SUBJECTS)}: {rng.choice(DETAILS)}.")
    return " ".join(words)


def main():
    rng = random.Random(2026)
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1000):
        print(answer(rng))


if __name__ == "__main__":  # bench/agreement_corpus.py imports answer()
    main()
