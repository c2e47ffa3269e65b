"""Text explanations share one unit, the distinct words of the cleaned text as LIME splits them: LIME
weighs them directly, Integrated Gradients' token scores are summed over the words they fall in."""

from __future__ import annotations

import numpy as np

from modelladder.explain.faithfulness import TextInput


def text_input(text: str, predict) -> TextInput:
    from lime.lime_text import IndexedString  # imported here: lime takes seconds to import

    return TextInput(text, IndexedString(text, bow=True), predict)


def words_of_tokens(subject: TextInput, tokens: dict) -> np.ndarray:
    """Each word's score: the sum of the scores of the tokens whose first non-space character lies in
    one of its occurrences (special tokens and punctuation-only tokens belong to no word)."""
    words = subject.words
    word_at = np.full(len(subject.text), -1)
    for word, positions in enumerate(words.positions):
        for position in positions:
            start = words.string_start[position]
            word_at[start: start + len(words.as_list[position])] = word
    scores = np.zeros(len(words.inverse_vocab))
    for (start, end), special, score in zip(tokens["offsets"], tokens["special"], tokens["scores"]):
        inside = [w for w in word_at[start:end] if w >= 0] if not special else []
        if inside:
            scores[inside[0]] += score
    return scores


def lime_attribution(subject: TextInput, target: int, classes: list[str], *, samples: int,
                     seed: int) -> tuple[np.ndarray, dict]:
    """LIME's weight for each word of the subject (its units' order) and details: the local linear
    model's R² on the perturbed samples and its intercept."""
    from lime.lime_text import LimeTextExplainer

    n_words = len(subject.units)
    explainer = LimeTextExplainer(class_names=classes, bow=True, random_state=seed)
    explanation = explainer.explain_instance(subject.text, subject.predict, labels=(target,),
                                             num_features=max(n_words, 1), num_samples=samples)
    scores = np.zeros(n_words)
    for word, weight in explanation.as_map()[target]:
        scores[word] = weight
    return scores, {"local_r2": round(float(explanation.score), 4),  # the one label asked for
                    "intercept": round(float(explanation.intercept[target]), 4)}


def pieces(subject: TextInput, scores: np.ndarray) -> list[tuple[str, float | None]]:
    """The text in order as (piece, score): words with their word's score, what lies between them with None."""
    word_of = {position: word for word, positions in enumerate(subject.words.positions) for position in positions}
    return [(piece, float(scores[word_of[i]]) if i in word_of else None)
            for i, piece in enumerate(subject.words.as_list)]


def html_snippet(subject: TextInput, scores: np.ndarray) -> str:
    """The text with each word in a <span> shaded green (for the class) or red (against), opacity by |score|."""
    from html import escape

    top = float(np.abs(scores).max()) if len(scores) else 0.0
    out = []
    for piece, score in pieces(subject, scores):
        if score is None:
            out.append(escape(piece))
            continue
        colour = "0,150,0" if score >= 0 else "200,0,0"
        out.append(f'<span title="{score:.4f}" style="background: rgba({colour},{abs(score) / (top or 1):.2f})">'
                   f"{escape(piece)}</span>")
    return "".join(out)
