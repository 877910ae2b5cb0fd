// go_http: the HTTP/1.1 "hello world" server of magpie's network benchmark,
// on goroutines. For a fair comparison with magpie and tokio_http it parses
// by hand on raw TCP (no net/http): a bufio.Reader yields the request line
// and headers up to the blank line.
//
//	go_http [--port P] [--workers N] [--host H]
//
// Keep-alive and pipelining: responses are buffered and flushed when no
// further request bytes are already buffered, so the answers to one read go
// out in one write. `GET /` gets 200 "Hello, World!"; another path 404;
// another method 405; a malformed request 400 and a head over 8 KiB 431,
// both closing the connection; Transfer-Encoding (chunked bodies) is not
// supported: 501 and close. A Content-Length body is read and discarded.
// Port 0 (the default) picks a free port, printed as `listening on <port>`.
// Exits with status 0 on SIGINT or SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"

	"magpie/bench/peers/go/internal/peer"
)

// maxHead is the longest request head (request line and headers) accepted.
const maxHead = 8 * 1024

var (
	hello       = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!")
	notFound    = []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nNot Found")
	notAllowed  = []byte("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n")
	badRequest  = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	tooLarge    = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	notImplemen = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

// isTchar reports whether c may appear in a method or header name (RFC 9110).
func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// requestLine checks "METHOD SP TARGET SP HTTP/1.x" (split by hand: no
// allocation per request).
func requestLine(line []byte) (method, target []byte, http11, ok bool) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return nil, nil, false, false
	}
	j := bytes.IndexByte(line[i+1:], ' ')
	if j < 0 {
		return nil, nil, false, false
	}
	method, target, version := line[:i], line[i+1:i+1+j], line[i+2+j:]
	if !isToken(method) || len(target) == 0 {
		return nil, nil, false, false
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return nil, nil, false, false
		}
	}
	switch string(version) {
	case "HTTP/1.1":
		return method, target, true, true
	case "HTTP/1.0":
		return method, target, false, true
	}
	return nil, nil, false, false
}

// hasToken reports whether a comma-separated header value contains token.
func hasToken(value []byte, token string) bool {
	for _, t := range bytes.Split(value, []byte{','}) {
		if bytes.EqualFold(bytes.Trim(t, " \t"), []byte(token)) {
			return true
		}
	}
	return false
}

// readLine returns the next CRLF-terminated line without its CRLF, counting
// its bytes into *used; ok is false on EOF, a read error, a bare LF or when
// the head grows past maxHead (then tooBig is set).
func readLine(r *bufio.Reader, used *int) (line []byte, ok, tooBig bool) {
	line, err := r.ReadSlice('\n')
	*used += len(line)
	if *used > maxHead || err == bufio.ErrBufferFull {
		return nil, false, true
	}
	if err != nil || len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, false, false
	}
	return line[:len(line)-2], true, false
}

// request reads one request head (and skips its body). It returns the
// response, whether to close after it, and whether the connection is still
// readable (false on EOF or a read error: nothing is to be sent).
func request(r *bufio.Reader) (resp []byte, closeAfter, alive bool) {
	used := 0
	line, ok, tooBig := readLine(r, &used)
	if tooBig {
		return tooLarge, true, true
	}
	if !ok {
		// EOF between requests is the normal end; a broken line is a bad request.
		if used == 0 {
			return nil, true, false
		}
		return badRequest, true, true
	}
	method, target, keepAlive, valid := requestLine(line)
	if !valid {
		return badRequest, true, true
	}
	// ReadSlice's result is only valid until the next read: decide the
	// response from the request line now.
	switch {
	case string(method) != "GET":
		resp = notAllowed
	case string(target) != "/":
		resp = notFound
	default:
		resp = hello
	}
	bodyLen := int64(-1)
	for {
		line, ok, tooBig = readLine(r, &used)
		if tooBig {
			return tooLarge, true, true
		}
		if !ok {
			return badRequest, true, true
		}
		if len(line) == 0 {
			break // end of the head
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return badRequest, true, true // also folded lines
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			n := int64(0)
			if len(value) == 0 || len(value) > 18 {
				return badRequest, true, true
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return badRequest, true, true
				}
				n = n*10 + int64(c-'0')
			}
			if bodyLen >= 0 && bodyLen != n {
				return badRequest, true, true
			}
			bodyLen = n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			return notImplemen, true, true
		case bytes.EqualFold(name, []byte("connection")):
			if hasToken(value, "close") {
				keepAlive = false
			} else if hasToken(value, "keep-alive") {
				keepAlive = true
			}
		}
	}
	if bodyLen > 0 {
		if _, err := r.Discard(int(bodyLen)); err != nil {
			return nil, true, false
		}
	}
	return resp, !keepAlive, true
}

func serve(c net.Conn) {
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	r := bufio.NewReaderSize(c, 2*maxHead)
	w := bufio.NewWriterSize(c, 16*1024)
	for {
		resp, closeAfter, alive := request(r)
		if !alive {
			w.Flush()
			return
		}
		w.Write(resp)
		// Flush once the requests already read are all answered.
		if closeAfter || r.Buffered() == 0 {
			if w.Flush() != nil || closeAfter {
				return
			}
		}
	}
}

func main() {
	args := peer.ParseArgs()
	peer.ExitOnSignal()
	ln := peer.Listen("go_http", args)
	peer.Serve(ln, serve)
}
