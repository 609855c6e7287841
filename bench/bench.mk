# make bench-peers: n8n and Stepline side by side (bench/peers.py). n8n comes from the npm
# registry, a pinned version (bench/peers/n8n-package.json), into a git-ignored cache
# folder: never a global install. The package file overrides n8n's xlsx, which n8n takes
# from a vendor's CDN that this machine cannot reach, with the registry's own release.

N8N_PACKAGE := bench/peers/n8n-package.json
N8N_DIR := bench/.cache/peers/n8n
N8N_STAMP := $(N8N_DIR)/.installed

.PHONY: bench-peers

$(N8N_STAMP): $(N8N_PACKAGE)
	mkdir -p $(N8N_DIR)
	cp $(N8N_PACKAGE) $(N8N_DIR)/package.json
	npm install --prefix $(N8N_DIR) --no-audit --no-fund --loglevel=error
	touch $@

bench-peers: install functions $(N8N_STAMP)
	$(VENV)/bin/python -m bench.peers
