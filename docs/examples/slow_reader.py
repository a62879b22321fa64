"""The clients of the flight-recorder walkthrough in README.md.

A reader that reads everything, a sleeper that reads its greeting and then
nothing (with a small receive buffer), and a talker that sends 3,000 lines
of 1,000 bytes to the chat on 127.0.0.1:7000. The sleeper is evicted as a
slow consumer once its send buffer has stayed full for --stall-timeout.
"""
import socket, time, threading
PORT = 7000
def conn(rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", PORT))
    return s
reader = conn()
sleeper = conn(rcvbuf=4096)       # reads its greeting, then never again
print("sleeper:", sleeper.recv(100).decode().strip())
print("reader:", reader.recv(100).decode().strip())
stop = False
def drain():
    while not stop:
        try:
            if not reader.recv(65536): break
        except OSError: break
threading.Thread(target=drain, daemon=True).start()
talker = conn()
talker.recv(100)
line = b"x" * 999 + b"\n"
for _ in range(3000):
    talker.sendall(line)
time.sleep(4)
sleeper.setblocking(False)
got = b""
try:
    while True:
        d = sleeper.recv(65536)
        if not d: print("sleeper: EOF"); break
        got += d
except BlockingIOError:
    print("sleeper: still open")
except ConnectionResetError:
    print("sleeper: connection reset by peer")
stop = True
