# Servers the tests start for themselves, installed once per machine from Debian's
# packages (the tests run each one in the foreground, on a port and config of its own).
# Included by the top Makefile: `include tests/servers.mk`.

.PHONY: dovecot

# the IMAP server of the Email trigger's tests (tests/triggers); never run as a service
dovecot:
	@command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd; }
