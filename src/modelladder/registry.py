"""Name -> "module:attr" for every dataset loader, model and task. Imported lazily on lookup."""

from __future__ import annotations

import importlib
from typing import Any

from modelladder.errors import InputError, unknown_name

DATASETS = {
    "digits": "modelladder.data.sources:load_digits",
    "mnist": "modelladder.data.mnist:load_mnist",
    "csv": "modelladder.data.tabular:load_csv",
    "parquet": "modelladder.data.tabular:load_parquet",
    "adult": "modelladder.data.adult:load_adult",
    "imdb": "modelladder.data.text_sources:load_imdb",
    "sst2": "modelladder.data.text_sources:load_sst2",
    "rt_polarity": "modelladder.data.text_sources:load_rt_polarity",
    "text": "modelladder.data.text:load_text",
    "parallel": "modelladder.data.parallel:load_parallel",  # (source, target) pair files, for task seq2seq
    "imagefolder": "modelladder.data.imagefolder:load_imagefolder",
    # images paired with captions, for task clip (digits / mnist: SYNTHETIC captions made from the labels)
    "coco_mini": "modelladder.data.captions:load_coco_mini",
    "digits_captions": "modelladder.data.captions:load_digits_captions",
    "mnist_captions": "modelladder.data.captions:load_mnist_captions",
    # sequence to sequence (task seq2seq): words -> phonemes of the CMU Pronouncing Dictionary
    "cmudict": "modelladder.data.cmudict:load_cmudict",
}

MODELS = {
    "mlp": "modelladder.models.mlp:MLP",
    "cnn": "modelladder.models.cnn:CNN",
    "linear": "modelladder.models.classic:LinearRung",  # LogisticRegression, or Ridge for task regression
    "logreg": "modelladder.models.classic:LogisticRegressionRung",  # the same rung under its older name
    "random_forest": "modelladder.models.classic:RandomForestRung",
    "hist_gb": "modelladder.models.classic:HistGradientBoostingRung",
    "rnn": "modelladder.models.rnn:RNN",
    "transformer": "modelladder.models.transformer:Transformer",
    "tfidf_logreg": "modelladder.models.text_classic:TfidfLogRegRung",
    "tfidf_svm": "modelladder.models.text_classic:TfidfSVMRung",
    "hf": "modelladder.models.hf:HFClassifier",
    "hf_causal_lm": "modelladder.models.hf_causal:HFCausalLM",
    "autoencoder": "modelladder.models.autoencoder:Autoencoder",
    "vae": "modelladder.models.vae:VAE",
    "gan": "modelladder.models.gan:GAN",
    "simclr": "modelladder.models.simclr:SimCLR",
    "clip": "modelladder.models.clip:CLIP",
    "seq2seq_rnn": "modelladder.models.seq2seq_rnn:Seq2SeqRNN",
    "seq2seq_transformer": "modelladder.models.seq2seq_transformer:Seq2SeqTransformer",
    "letter_to_sound": "modelladder.models.letter_to_sound:LetterToSoundRung",  # seq2seq: EM alignment + CART
}

TASKS = {
    "classification": "modelladder.tasks.classification:Classification",
    "regression": "modelladder.tasks.regression:Regression",
    "causal_lm": "modelladder.tasks.language_model:CausalLM",
    "masked_lm": "modelladder.tasks.language_model:MaskedLM",
    "reconstruction": "modelladder.tasks.reconstruction:Reconstruction",
    "vae": "modelladder.tasks.vae:VAE",
    "gan": "modelladder.tasks.gan:GAN",
    "contrastive": "modelladder.tasks.contrastive:Contrastive",
    "clip": "modelladder.tasks.clip:Clip",
    "seq2seq": "modelladder.tasks.seq2seq:Seq2Seq",
}

# text corpora for `ladder pretrain` (the tasks below): data.dataset names one when task.name is one of them
CORPORA = {
    "tinyshakespeare": "modelladder.data.corpus:tinyshakespeare",
    "gutenberg": "modelladder.data.corpus:gutenberg",
    "imdb_unsup": "modelladder.data.corpus:imdb_unsup",
    "text": "modelladder.data.corpus:text_files",
}
PRETRAIN_TASKS = ("causal_lm", "masked_lm")


def load_object(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def lookup(registry: dict[str, str], field: str, name: str) -> Any:
    """The object registered under `name`; an InputError naming `field` with did-you-mean if none."""
    if name not in registry:
        raise InputError(unknown_name(field, name, registry))
    return load_object(registry[name])
