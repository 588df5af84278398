#!/usr/bin/env bash
# Real-tool capture for the Suricata comparison (issue 12 item 1).
#
# Builds two network namespaces joined by one veth pair (addresses only in
# 198.18.0.0/15), records everything on the victim's end with tcpdump, and
# drives real tools from their own source addresses:
#
#   198.18.1.1  hping3 ICMP echo flood        (-i u1000, COUNT packets)
#   198.18.1.2  hping3 SYN flood to port 80   (-i u1000, COUNT packets)
#   198.18.1.3  nmap -sS, ports 1-1000, fast
#   198.18.1.4  nmap -sN (NULL), ports 1-200
#   198.18.1.5  nmap -sF (FIN),  ports 1-200
#   198.18.1.6  nmap -sX (XMAS), ports 1-200
#   198.18.1.7  curl, SQL injection in the URI query
#   198.18.1.8  curl, SQL injection in POST bodies
#   198.18.1.9  nmap -sS, ports 1-100, slow (--max-rate 40: a scan, not a flood)
#   198.18.2.1-20  benign: curl GETs (small pages and one 1 MB download),
#                  ping, an ssh-like TCP exchange on port 22
#
# One capture is ~25 k packets over ~21 s. It is then replicated to at least
# TARGET packets (default 3 000 000): copy k is shifted in time by
# k * (capture duration + 120 s) with `editcap -t` and the copies are
# concatenated with `mergecap -a`, so every packet keeps its spacing (a
# flood stays a flood) and copies never overlap. Copies keep their source
# addresses: the same nine attackers return in repeated episodes, 120 s
# apart (longer than flowgate's 60 s block, so each episode is detected
# anew; Suricata's thresholds are per second, so the same holds there).
#
# Output (perf/data/, git-ignored):
#   real-one.pcap        the single capture
#   real-<N>.pcap        the replicated one (N = its packet count, rounded)
#   real.attackers       "address role" per attacker
#   real.benign          benign addresses, one per line
#   real.pcap            symlink to real-<N>.pcap
#
# Usage (root): perf/capture-real.sh [TARGET_PACKETS]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-3000000}
COUNT=${COUNT:-3000} # hping3 flood packets per flood
out=perf/data
mkdir -p "$out"
[ "$(id -u)" -eq 0 ] || { echo "capture-real: needs root (namespaces, raw sockets)" >&2; exit 1; }
for t in hping3 nmap curl tcpdump editcap mergecap capinfos ping python3 ethtool; do
  command -v "$t" >/dev/null || { echo "capture-real: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

A=fgpa$$   # attacker + benign clients namespace
V=fgpv$$   # victim namespace
VA=fgpa$$a # veth end in A
VV=fgpv$$v # veth end in V
VICTIM=198.19.0.1
work=$(mktemp -d)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  ip netns pids "$A" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns pids "$V" 2>/dev/null | xargs -r kill 2>/dev/null
  sleep 0.3
  ip netns del "$A" 2>/dev/null
  ip netns del "$V" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$A"
ip netns add "$V"
ip link add "$VA" netns "$A" type veth peer name "$VV" netns "$V"
for ns in "$A" "$V"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip netns exec "$ns" ip link set lo up
done
attackers=(
  "198.18.1.1 icmp_flood"
  "198.18.1.2 syn_flood"
  "198.18.1.3 syn_scan"
  "198.18.1.4 null_scan"
  "198.18.1.5 fin_scan"
  "198.18.1.6 xmas_scan"
  "198.18.1.7 sqli_uri"
  "198.18.1.8 sqli_body"
  "198.18.1.9 slow_syn_scan"
)
benign=()
for i in $(seq 1 20); do benign+=("198.18.2.$i"); done
for a in "${attackers[@]}"; do ip -n "$A" addr add "${a%% *}/15" dev "$VA"; done
for b in "${benign[@]}"; do ip -n "$A" addr add "$b/15" dev "$VA"; done
ip -n "$V" addr add "$VICTIM/15" dev "$VV"
# TCP sent on a veth leaves its checksum to offload: compute it in the
# sender so the capture carries valid checksums.
ip netns exec "$A" ethtool -K "$VA" tx off >/dev/null
ip netns exec "$V" ethtool -K "$VV" tx off >/dev/null
ip -n "$A" link set "$VA" up
ip -n "$V" link set "$VV" up

# Victim services: HTTP on 80 (GET: a page of ?size= bytes; POST: reads the
# body), an ssh-like line service on 22 (banner, then echoes lines).
cat >"$work/server.py" <<'EOF'
import socketserver, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def page(self, n):
        body = (b"<html><body>" + b"x" * max(0, n - 27) + b"</body></html>\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        try:
            n = int(q.get("size", ["600"])[0])
        except ValueError:
            n = 600
        self.page(min(n, 2 << 20))
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        self.page(300)
    def log_message(self, *a):
        pass

class Ssh(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        for line in self.rfile:
            self.wfile.write(b"ok " + line)

class T(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    def handle_error(self, *a):
        pass
    daemon_threads = True

ThreadingHTTPServer.daemon_threads = True
threading.Thread(target=T(("0.0.0.0", 22), Ssh).serve_forever, daemon=True).start()
ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()
EOF
ip netns exec "$V" python3 "$work/server.py" &
pids+=($!)
for _ in $(seq 50); do
  ip netns exec "$V" bash -c "exec 3<>/dev/tcp/127.0.0.1/80" 2>/dev/null && break
  sleep 0.1
done
cap="$out/real-one.pcap"
ip netns exec "$V" tcpdump -i "$VV" -s 0 -B 32768 -U -w "$cap" 2>"$work/tcpdump.log" &
tcpdump_pid=$!
pids+=("$tcpdump_pid")
sleep 1
inA() { ip netns exec "$A" "$@"; }
U="http://$VICTIM"

# Benign clients, in the background for the whole capture.
ssh_like() { # source address
  inA python3 - "$1" "$VICTIM" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[2], 22), source_address=(sys.argv[1], 0))
s.recv(100)
s.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
s.recv(100)
for i in range(8):
    s.sendall(b"session line %d\n" % i)
    s.recv(100)
    time.sleep(0.2)
s.close()
EOF
}
benign_client() { # source address, index
  local src=$1 i=$2
  inA ping -q -I "$src" -c 10 -i 0.5 "$VICTIM" >/dev/null &
  for r in $(seq 1 12); do
    case $((r % 4)) in
      0) path="/search?q=union+square+hotels&page=$r" ;;
      1) path="/product.php?id=44$i&ref=home" ;;
      2) path="/people?name=O%27Brien&city=Dublin" ;;
      3) path="/news?cat=sports&size=4000" ;;
    esac
    inA curl -s -o /dev/null --interface "$src" "$U$path"
    sleep 0.4
  done
  inA curl -s -o /dev/null --interface "$src" --data-urlencode "comment=I'd select the blue one -- or maybe not" "$U/feedback"
  ssh_like "$src"
  [ "$i" -le 2 ] && inA curl -s -o /dev/null --interface "$src" "$U/big?size=1000000"
  wait
}
bpids=()
i=0
for b in "${benign[@]}"; do
  i=$((i + 1))
  benign_client "$b" "$i" &
  bpids+=($!)
  sleep 0.1
done

# Attackers, one after another, while the benign clients run.
inA hping3 -1 -a 198.18.1.1 -i u1000 -c "$COUNT" "$VICTIM" >/dev/null 2>&1 || true
inA hping3 -S -a 198.18.1.2 -p 80 -i u1000 -c "$COUNT" "$VICTIM" >/dev/null 2>&1 || true
inA nmap -n -Pn -sS -S 198.18.1.3 -e "$VA" -p 1-1000 --max-rate 2000 "$VICTIM" >/dev/null
inA nmap -n -Pn -sN -S 198.18.1.4 -e "$VA" -p 1-200 --max-rate 1000 "$VICTIM" >/dev/null
inA nmap -n -Pn -sF -S 198.18.1.5 -e "$VA" -p 1-200 --max-rate 1000 "$VICTIM" >/dev/null
inA nmap -n -Pn -sX -S 198.18.1.6 -e "$VA" -p 1-200 --max-rate 1000 "$VICTIM" >/dev/null
uri_payloads=(
  "1' OR 1=1--"
  "1 OR 1=1"
  "-1 UNION SELECT username,password FROM users--"
  "1 UNION ALL SELECT NULL,@@version--"
  "1 AND SLEEP(5)"
  "1; DROP TABLE users--"
  "admin'--"
  "1' AND extractvalue(1,concat(0x7e,version()))--"
)
for p in "${uri_payloads[@]}"; do
  inA curl -s -o /dev/null --interface 198.18.1.7 -G --data-urlencode "id=$p" "$U/item"
  sleep 0.2
done
body_payloads=(
  "user=admin' OR '1'='1&pass=x"
  "user=x&pass=' OR 1=1--"
  "q=1 UNION SELECT table_name FROM information_schema.tables"
  "id=1;WAITFOR DELAY '0:0:5'--"
  "id=1 AND BENCHMARK(5000000,MD5(1))"
  "name=a' AND SLEEP(5)#"
)
for p in "${body_payloads[@]}"; do
  # urlencoded as a browser would (curl --data-urlencode encodes after '=')
  inA curl -s -o /dev/null --interface 198.18.1.8 --data-urlencode "${p%%=*}=${p#*=}" "$U/login"
  # and as raw form data
  inA curl -s -o /dev/null --interface 198.18.1.8 --data-raw "$p" "$U/login"
  sleep 0.2
done
inA nmap -n -Pn -sS -S 198.18.1.9 -e "$VA" -p 1-100 --max-rate 40 "$VICTIM" >/dev/null
for p in "${bpids[@]}"; do wait "$p"; done
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
cat "$work/tcpdump.log" | grep -E 'captured|dropped' >&2 || true

printf '%s\n' "${attackers[@]}" >"$out/real.attackers"
printf '%s\n' "${benign[@]}" >"$out/real.benign"

n=$(capinfos -c -M "$cap" | awk '/Number of packets/ {print $NF}')
dur=$(capinfos -u -M "$cap" | awk '/Capture duration/ {print $(NF-1)}')
copies=$(( (target + n - 1) / n ))
shift=$(python3 -c "import math,sys; print(math.ceil(float(sys.argv[1])) + 120)" "$dur")
echo "capture: $n packets over $dur s; $copies copies, $shift s apart" >&2
mkdir -p "$work/copies"
files=()
for k in $(seq 0 $((copies - 1))); do
  f=$work/copies/$(printf %05d "$k").pcap
  editcap -F pcap -t $((k * shift)) "$cap" "$f"
  files+=("$f")
done
total=$((n * copies))
name=$out/real-$total.pcap
mergecap -F pcap -a -w "$name" "${files[@]}"
ln -sfn "$(basename "$name")" "$out/real.pcap"
capinfos -c -u -M "$name" | sed -n '2,$p' >&2
echo "$name"
