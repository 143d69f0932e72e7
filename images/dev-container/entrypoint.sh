#!/bin/bash
# Prepare SSH host keys and the dev user's authorized keys, then run the command (sshd by default).
set -euo pipefail

HOSTKEY_DIR=/etc/dev-container/host-keys       # optional Secret: ssh_host_ed25519_key, ssh_host_rsa_key
AUTHKEYS_FILE=/etc/dev-container/authorized_keys/authorized_keys   # Secret with the public keys

for type in ed25519 rsa; do
  key=/etc/ssh/ssh_host_${type}_key
  if [ -s "$HOSTKEY_DIR/ssh_host_${type}_key" ]; then
    install -m 0600 "$HOSTKEY_DIR/ssh_host_${type}_key" "$key"
    ssh-keygen -y -f "$key" > "$key.pub"
  elif [ ! -s "$key" ]; then
    # no persistent key supplied: a new one for this pod (clients see a changed host key after a restart)
    ssh-keygen -q -t "$type" -N "" -f "$key"
  fi
done

if [ -s "$AUTHKEYS_FILE" ]; then
  install -o dev -g dev -m 0600 "$AUTHKEYS_FILE" /home/dev/.ssh/authorized_keys
else
  echo "dev-container: no authorized keys at $AUTHKEYS_FILE, nobody can log in" >&2
fi

# the workspace volume may arrive owned by root
if [ -d /home/dev/workspace ] && [ "$(stat -c %u /home/dev/workspace)" != "1000" ]; then
  chown dev:dev /home/dev/workspace 2>/dev/null || true
fi

install -d -m 0755 /run/sshd
exec "$@"
