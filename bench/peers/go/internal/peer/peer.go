// Package peer holds what the Go peer programs share: command-line parsing,
// the worker count, the listening socket and the shutdown signal.
package peer

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Args are the options common to the peer programs. Names holds the
// positional arguments (benchmark names); the servers reject any.
type Args struct {
	Workers int
	Quick   bool
	Port    int
	Host    string
	Names   []string
}

func usage(prog, msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", prog, msg)
	fmt.Fprintf(os.Stderr, "usage: %s [--workers N] [--quick] [name...]   (benchmarks)\n"+
		"       %s [--port P] [--host H] [--workers N]   (servers)\n", prog, prog)
	os.Exit(2)
}

// ParseArgs reads os.Args and sets GOMAXPROCS to the worker count (default:
// runtime.NumCPU, the CPUs this process may run on, which is what the Tokio
// peer uses too).
func ParseArgs() Args {
	prog := os.Args[0]
	a := Args{Workers: runtime.NumCPU(), Host: "127.0.0.1"}
	argv := os.Args[1:]
	for i := 0; i < len(argv); i++ {
		arg := argv[i]
		key, inline, hasInline := arg, "", false
		if strings.HasPrefix(arg, "--") {
			if k, v, ok := strings.Cut(arg, "="); ok {
				key, inline, hasInline = k, v, true
			}
		}
		value := func() string {
			if hasInline {
				return inline
			}
			if i+1 >= len(argv) {
				usage(prog, key+" needs a value")
			}
			i++
			return argv[i]
		}
		switch {
		case key == "--workers":
			n, err := strconv.Atoi(value())
			if err != nil || n < 1 || n > 1024 {
				usage(prog, "--workers must be between 1 and 1024")
			}
			a.Workers = n
		case key == "--port":
			n, err := strconv.Atoi(value())
			if err != nil || n < 0 || n > 65535 {
				usage(prog, "--port must be 0..65535")
			}
			a.Port = n
		case key == "--host":
			a.Host = value()
		case key == "--quick":
			a.Quick = true
		case key == "-h" || key == "--help":
			usage(prog, "help")
		case strings.HasPrefix(key, "-"):
			usage(prog, "unknown option "+key)
		default:
			a.Names = append(a.Names, arg)
		}
	}
	// Worker threads running goroutines: Go's counterpart of the runtime's
	// worker count (GOMAXPROCS=1 runs all goroutines on one thread at a time).
	runtime.GOMAXPROCS(a.Workers)
	return a
}

// Listen listens on host:port (port 0 picks a free one) and prints the
// readiness line the benchmark driver waits for. Go asks the kernel for a
// backlog of somaxconn.
func Listen(prog string, a Args) net.Listener {
	if len(a.Names) > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %s\n", prog, a.Names[0])
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.Host, strconv.Itoa(a.Port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered: the line is out when Printf returns.
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	return ln
}

// ExitOnSignal makes SIGINT and SIGTERM end the process with status 0,
// without waiting for open connections.
func ExitOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		os.Exit(0)
	}()
}

// Serve accepts connections until the process exits, one goroutine each.
// Accept errors (EMFILE and friends) back off instead of spinning.
func Serve(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go handle(c)
	}
}
