.PHONY: install test unit integration lint demo bench
install:
	bash scripts/install.sh
test:
	bash scripts/test.sh
unit: install
	.venv/bin/pytest -q tests/unit
integration: install
	.venv/bin/pytest -q tests/integration
lint: install
	.venv/bin/ruff check src tests bench && .venv/bin/mypy && .venv/bin/lint-imports
demo:
	bash scripts/demo.sh
bench: install
	.venv/bin/python bench/run.py
