# The same commands for everyone: make install | demo | test | lint | bench | package
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The modules that declare the tasks `make up` runs; `make up TASKS=myapp.tasks` runs yours.
TASKS ?= taskcast_demo.tasks,taskcast_images.tasks

.PHONY: install chromium services demo up test lint format bench package clean

install: $(VENV)/.installed chromium

chromium:  ## a Chromium for the browser tests: the one on PATH, else Debian's package
	scripts/chromium.sh

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

services:  ## start RabbitMQ and Redis on this machine if they are not answering
	scripts/services.sh

demo: install services
	$(BIN)/taskcast demo

up: install services
	$(BIN)/taskcast up --tasks $(TASKS)

test: install services
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install services
	$(BIN)/python -m bench

# API Gateway's own answers (unknown route or method, throttling, ...) in the API's error body.
GATEWAY_RESPONSES := .chalice/gateway-responses.json

package: install  ## the SAM template for AWS: taskcore vendored, the catalogue of $(TASKS) bundled
	rm -rf functions/vendor && mkdir -p functions/vendor
	cp -r taskcore functions/vendor/taskcore
	$(BIN)/taskcast tasks export $(TASKS) -o functions/chalicelib/catalogue.json
	cd functions && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(BIN)/chalice package --stage prod --merge-template $(GATEWAY_RESPONSES) ../build/sam

clean:
	rm -rf $(VENV) build functions/vendor functions/chalicelib/catalogue.json .pytest_cache .mypy_cache .ruff_cache .taskcast
