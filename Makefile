# Two commands on a fresh clone:  make train   |   make test
# Both create .venv and install on first use. Data: $CIFARLAB_DATA, else ../shared/data is materialized
# into .data/ when present, else cifarlab downloads into ~/.cache/cifarlab.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
BUDGET  ?= 5m
SHARED  := ../shared/data/materialize
DATA    := $(if $(CIFARLAB_DATA),$(CIFARLAB_DATA),$(if $(wildcard $(SHARED)),$(CURDIR)/.data,))
export CIFARLAB_DATA := $(DATA)

.PHONY: train train-preset test data reproduce bench readme clean

$(BIN)/cifarlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

data: $(BIN)/cifarlab
	@if [ -n "$(DATA)" ] && [ -f "$(SHARED)" ] && [ ! -f "$(DATA)/cifar-100-python/train" -o ! -f "$(DATA)/cifar-10-batches-py/test_batch" ]; then \
	  $(BIN)/python $(SHARED) $(DATA); fi
	@if [ -n "$(DATA)" ] && [ -d "$(DATA)" ]; then $(BIN)/python scripts/note_data_copy.py $(DATA); fi

# The best CIFAR-100 model this machine trains in $(BUDGET) (wall time, measured and planned at start).
# A named preset instead: make train-preset PRESET=c100-fast
train: data
	$(BIN)/cifarlab train --dataset cifar100 --budget $(BUDGET) --out runs/budget-$(BUDGET) --overwrite $(ARGS)
	$(BIN)/python scripts/vs_seed.py runs/budget-$(BUDGET)

PRESET  ?= c100-fast
train-preset: data
	$(BIN)/cifarlab train --preset $(PRESET) --out runs/$(PRESET) --overwrite $(ARGS)
	$(BIN)/python scripts/vs_seed.py runs/$(PRESET)

test: data
	$(BIN)/python -m pytest -q $(ARGS)

# Re-run the seed project's experiments and append to results/ (several minutes each on 2 cores).
SEEDS ?= 0 1 2
reproduce: data
	for p in c10-mlp c10-cnn c100-cnn-base c100-cnn-aug; do for s in $(SEEDS); do \
	  $(BIN)/cifarlab train --preset $$p --set train.seed=$$s --out runs/$$p-s$$s --overwrite \
	    --record results/$$p.jsonl --quiet || exit 1; done; done

bench: data
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) .data runs

# Regenerate the number blocks of README.md and docs/*.md, the preset headers and the figures from results/,
# benchmarks/results/, studies/ and checkpoints/ (`python scripts/update_readme.py --check` only compares).
readme: $(BIN)/cifarlab
	$(BIN)/python scripts/update_readme.py
	$(BIN)/python -m cifarlab.doctor.docs
