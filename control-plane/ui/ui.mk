# The web UI (control-plane/ui): a Preact + TypeScript app built by Vite from the npm
# lock file into control-plane/ui/dist, which the control plane serves at /ui/.
# Included by the top Makefile: `include control-plane/ui/ui.mk`.

UI_DIR := control-plane/ui
UI_STAMP := $(UI_DIR)/node_modules/.package-lock.json
UI_BUILT := $(UI_DIR)/dist/index.html
UI_SOURCES := $(shell find $(UI_DIR)/src $(UI_DIR)/scripts -type f 2>/dev/null) \
	$(UI_DIR)/index.html $(UI_DIR)/package.json $(UI_DIR)/vite.config.ts $(UI_DIR)/tsconfig.json

.PHONY: ui ui-clean browser

# build only when the build is missing or older than a source or the lock file
ui: $(UI_BUILT)

$(UI_STAMP): $(UI_DIR)/package-lock.json
	cd $(UI_DIR) && npm ci --no-audit --no-fund
	touch $@

$(UI_BUILT): $(UI_STAMP) $(UI_SOURCES)
	cd $(UI_DIR) && npm run build

ui-clean:
	rm -rf $(UI_DIR)/dist $(UI_DIR)/node_modules

# the browser tests drive Debian's chromium (tests/ui); installed once per machine
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
