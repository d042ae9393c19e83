"""The ML core: a small character-level GPT, its data, trainer and sampler.

gpt.py (GPTConfig, GPT), data.py (resolve_corpus, CharTokenizer, Dataset),
train.py (TrainConfig, Trainer, TrainerHooks), sample.py (generate_text, load_checkpoint),
footprint.py (count_params, check_fits: a model's memory against the device's, before it
is built).
Imports torch and the standard library only; never prints.
"""
