# Two entry points: `make demo` runs the main job, `make test` runs the suite.
# Both create .venv and install the pinned dependencies (requirements.lock) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo
ANALYSIS := $(DEMO)/home/analysis
GENOTYPES := $(DEMO)/home/releases/r1/controlled/genomics/genotypes

.PHONY: demo test system lint lock clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

system:
	./scripts/system-packages.sh

demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/opencohort init $(DEMO)/home --name "opencohort demo"
	$(BIN)/opencohort synth --home $(DEMO)/home --participants 5000 --genomes 2000 --sites 5 --seed 42
	$(BIN)/opencohort vocab build --home $(DEMO)/home
	$(BIN)/opencohort registry load --home $(DEMO)/home $(DEMO)/home/synthetic/registry
	$(BIN)/opencohort registry summary --home $(DEMO)/home
	$(BIN)/opencohort ingest --home $(DEMO)/home $(DEMO)/home/synthetic
	printf '\n[genomics]\nknown_variants = "synthetic/truth/candidate_variants.csv"\n' >> $(DEMO)/home/opencohort.toml
	$(BIN)/opencohort registry send --home $(DEMO)/home $(DEMO)/home/synthetic/genomes/manifest.csv --manifest $(DEMO)/home/sequencing-manifest.csv
	$(BIN)/opencohort genomics ingest --home $(DEMO)/home $(DEMO)/home/synthetic/genomes
	$(BIN)/opencohort genomics qc --home $(DEMO)/home
	$(BIN)/opencohort genomics ancestry --home $(DEMO)/home --panel $(DEMO)/home/synthetic/genomes/reference_panel
	$(BIN)/opencohort genomics kinship --home $(DEMO)/home
	$(BIN)/opencohort curate run --home $(DEMO)/home --release r1
	$(BIN)/opencohort release check --home $(DEMO)/home r1
	$(BIN)/opencohort release show --home $(DEMO)/home r1
	# analysis: the planted chr6 BMI locus and asthma variant (seed 42, synthetic/truth/effects.csv)
	$(BIN)/opencohort phenotype --home $(DEMO)/home --release r1 --tier controlled --out $(ANALYSIS)/phenotypes
	$(BIN)/opencohort gwas --pfile $(GENOTYPES).chr6 --pheno $(ANALYSIS)/phenotypes/pheno.tsv --pheno-name bmi_median --covar $(ANALYSIS)/phenotypes/covar.tsv --out $(ANALYSIS)/gwas/chr6
	$(BIN)/opencohort phewas --home $(DEMO)/home --phenotypes $(ANALYSIS)/phenotypes/phenotypes.parquet --pfile $(GENOTYPES).chr6 --variant chr6:18138651:A:G --out $(ANALYSIS)/phewas
	@echo "demo done: program home in $(DEMO)/home (reports in $(DEMO)/home/reports, $(DEMO)/home/genomics/reports and $(ANALYSIS))"

test: $(STAMP) system
	$(BIN)/ruff check src tests bench
	OPENCOHORT_TEST_PG_URL=$$(./scripts/postgres.sh) $(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Re-pin every dependency from pyproject.toml in a clean environment.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/python -m pip install -q --upgrade pip
	.lockenv/bin/python -m pip install -q ".[synth,test]"
	.lockenv/bin/python -m pip freeze --exclude-editable | grep -v '^opencohort' > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
