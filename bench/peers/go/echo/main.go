// go_echo: the TCP echo server of magpie's network benchmark, on goroutines.
//
//	go_echo [--port P] [--workers N] [--host H]
//
// Port 0 (the default) picks a free port; the chosen one is printed as
// `listening on <port>` once the server accepts. Every byte received on a
// connection is written back (64 KiB buffer, TCP_NODELAY). GOMAXPROCS is
// the worker count. Exits with status 0 on SIGINT or SIGTERM.
package main

import (
	"net"

	"magpie/bench/peers/go/internal/peer"
)

func echo(c net.Conn) {
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true) // Go's default already, said explicitly
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or reset
			return
		}
	}
}

func main() {
	args := peer.ParseArgs()
	peer.ExitOnSignal()
	ln := peer.Listen("go_echo", args)
	peer.Serve(ln, echo)
}
