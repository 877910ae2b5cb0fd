// go_bench: magpie's scheduler and sync micro-benchmarks written on
// goroutines, so both can be measured side by side in one run.
//
//	go_bench [--workers N] [--quick] [name...]
//
// Each result is one line on stdout, `name workers ns_per_op`, except
// parked_1m, which prints KiB of RSS per parked goroutine. Workers is
// GOMAXPROCS. Every benchmark runs reps times (5, or 3 with --quick) and the
// median is printed; parked_1m runs once (see there). --quick also shrinks
// spawn_join_1m and parked_1m from 1,000,000 to 100,000 goroutines.
//
// This file mirrors tokio_bench.rs function for function. Go has no
// yield_now/JoinHandle/Notify/Semaphore/unbounded channel, so the closest
// standard-library tools stand in: runtime.Gosched, a one-slot result
// channel per goroutine, channels of struct{}, a channel larger than the
// whole run. Go has no blocking-task pool either (a goroutine that blocks
// just takes its thread out of the scheduler), so spawn_blocking is
// accepted as a name and prints nothing.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"magpie/bench/peers/go/internal/peer"
)

// all lists the benchmarks in the order they run (parked_1m last: it is the
// slowest, and its goroutines' stacks stay with the Go runtime afterwards).
var all = []string{
	"ctx_switch",
	"spawn_many",
	"spawn_join_1m",
	"yield_many",
	"chained_spawn",
	"ping_pong",
	"chan_contention_bounded",
	"chan_contention_unbounded",
	"mutex_contention",
	"sem_concurrent",
	"rwlock_read_concurrent",
	"notify_one",
	"spawn_blocking",
	"parked_1m",
}

func median(v []float64) float64 {
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func nsPer(start time.Time, ops int) float64 {
	return float64(time.Since(start).Nanoseconds()) / float64(ops)
}

// measure runs body reps times in a fresh goroutine (the counterpart of
// tokio_bench's spawned benchmark task) and returns the median ns/op.
func measure(reps int, body func() float64) float64 {
	v := make([]float64, reps)
	for i := range v {
		ch := make(chan float64)
		go func() { ch <- body() }()
		v[i] = <-ch
	}
	return median(v)
}

// -------------------------------------------------------------- scheduler

// ctxSwitch: two goroutines each yield 100,000 times; ns per yield over both.
func ctxSwitch() float64 {
	const yields = 100_000
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < 2; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < yields; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return nsPer(start, 2*yields)
}

// spawnMany: one goroutine starts 100,000 goroutines that each decrement a
// counter; the last one signals. ns per goroutine.
func spawnMany() float64 {
	const tasks = 100_000
	rem := int64(tasks)
	done := make(chan struct{})
	start := time.Now()
	for i := 0; i < tasks; i++ {
		go func() {
			if atomic.AddInt64(&rem, -1) == 0 {
				close(done)
			}
		}()
	}
	<-done
	return nsPer(start, tasks)
}

// spawnJoin starts tasks goroutines keeping a one-slot result channel for
// each (Go's stand-in for a JoinHandle), then joins them in order.
func spawnJoin(tasks int) float64 {
	start := time.Now()
	handles := make([]chan int, tasks)
	for i := range handles {
		h := make(chan int, 1)
		handles[i] = h
		go func(i int) { h <- i }(i)
	}
	sum := 0
	for _, h := range handles {
		sum += <-h
	}
	ns := nsPer(start, tasks)
	if sum != tasks*(tasks-1)/2 {
		panic("spawn_join: wrong sum")
	}
	return ns
}

// yieldMany: 200 goroutines × 1,000 yields; ns per yield.
func yieldMany() float64 {
	const tasks, yields = 200, 1_000
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < tasks; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < yields; i++ {
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	return nsPer(start, tasks*yields)
}

// chainedSpawn: each goroutine starts the next, depth 1,000; the last
// signals. One chain is tens of microseconds, so one measurement runs 100
// chains back to back; ns per spawn.
func chainedSpawn() float64 {
	const depth, chains = 1_000, 100
	var link func(n int, done chan struct{})
	link = func(n int, done chan struct{}) {
		if n == 0 {
			done <- struct{}{}
		} else {
			go link(n-1, done)
		}
	}
	start := time.Now()
	for c := 0; c < chains; c++ {
		done := make(chan struct{}, 1)
		go link(depth-1, done) // depth goroutines in all
		<-done
	}
	return nsPer(start, chains*depth)
}

// parked: a million goroutines asleep at once: RSS before starting them and
// once all are parked, in KiB per goroutine. Each sleeps 1 s plus up to 1 s
// (spread so wake-ups do not all land at once), which normally outlasts the
// spawning. On a slow or loaded machine some wake before the measurement:
// such a goroutine sleeps again for twice as long each time, so every one
// is parked on a timer when RSS is read (bar the odd one re-arming) without
// a storm of wake-ups. Runs once, not reps times: the Go runtime keeps
// freed stacks and heap, so a second run in the same process would read
// low.
func parked(tasks int) float64 {
	var parkedN, measured, left int64 = 0, 0, int64(tasks)
	done := make(chan struct{})
	runtime.GC() // start from a collected heap
	before := rssKiB()
	for i := 0; i < tasks; i++ {
		go func(i int) {
			atomic.AddInt64(&parkedN, 1)
			nap := time.Duration(1_000+i%1_000) * time.Millisecond
			for {
				time.Sleep(nap)
				if atomic.LoadInt64(&measured) != 0 {
					break
				}
				nap *= 2
			}
			if atomic.AddInt64(&left, -1) == 0 {
				close(done)
			}
		}(i)
	}
	// Every goroutine has started once the counter is full; the short sleep
	// lets one between its increment and its timer finish parking.
	for atomic.LoadInt64(&parkedN) < int64(tasks) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	after := rssKiB()
	atomic.StoreInt64(&measured, 1)
	<-done // all wake up (within 2 s unless they re-slept) and finish
	if after < before {
		return 0
	}
	return float64(after-before) / float64(tasks)
}

// rssKiB is this process's resident set size in KiB (VmRSS).
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Bytes(); bytes.HasPrefix(line, []byte("VmRSS:")) {
			v := bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(line[6:]), []byte("kB")))
			n, _ := strconv.ParseInt(string(v), 10, 64)
			return n
		}
	}
	return 0
}

// ------------------------------------------------------------------- sync

// pingPong: 1,000 rounds as in Tokio's ping_pong: every round is a
// goroutine that starts a partner and exchanges two one-shot messages
// (one-slot channels) with it; the last round to finish signals. One
// measurement is 10 batches of rounds; ns per round.
func pingPong() float64 {
	const rounds, repeat = 1_000, 10
	start := time.Now()
	for r := 0; r < repeat; r++ {
		rem := int64(rounds)
		done := make(chan struct{})
		for i := 0; i < rounds; i++ {
			go func() {
				ping, pong := make(chan struct{}, 1), make(chan struct{}, 1)
				go func() {
					<-ping
					pong <- struct{}{}
				}()
				ping <- struct{}{}
				<-pong
				if atomic.AddInt64(&rem, -1) == 0 {
					close(done)
				}
			}()
		}
		<-done
	}
	return nsPer(start, repeat*rounds)
}

const (
	producers  = 5
	messages   = 1_000 // per producer
	chanRepeat = 20    // channel rounds per measurement
)

// chanContention: 5 producer goroutines × 1,000 messages into one consumer
// through one channel of the given capacity; ns per message. Go has no
// unbounded channel: a capacity of the whole run's messages never fills,
// which is what an unbounded channel does here.
func chanContention(capacity int) float64 {
	start := time.Now()
	for r := 0; r < chanRepeat; r++ {
		ch := make(chan int, capacity)
		var wg sync.WaitGroup
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < messages; i++ {
					ch <- i
				}
			}()
		}
		go func() { wg.Wait(); close(ch) }()
		got := 0
		for range ch {
			got++
		}
		if got != producers*messages {
			panic("chan_contention: lost messages")
		}
	}
	return nsPer(start, chanRepeat*producers*messages)
}

const (
	contenders = 5
	locks      = 10_000 // per contender
)

// contend runs contenders copies of body and waits for all; ns per loop
// iteration inside body (locks per goroutine).
func contend(body func()) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < contenders; t++ {
		wg.Add(1)
		go func() { defer wg.Done(); body() }()
	}
	wg.Wait()
	return nsPer(start, contenders*locks)
}

// mutexContention: 5 goroutines × 10,000 lock/unlock of a sync.Mutex,
// incrementing a counter inside; ns per lock.
func mutexContention() float64 {
	var mu sync.Mutex
	counter := 0
	ns := contend(func() {
		for i := 0; i < locks; i++ {
			mu.Lock()
			counter++
			mu.Unlock()
		}
	})
	if counter != contenders*locks {
		panic("mutex_contention: lost increments")
	}
	return ns
}

// semConcurrent: 5 goroutines × 10,000 acquire/release of a semaphore with
// 2 permits: a channel of capacity 2 (send acquires, receive releases).
func semConcurrent() float64 {
	sem := make(chan struct{}, 2)
	return contend(func() {
		for i := 0; i < locks; i++ {
			sem <- struct{}{}
			<-sem
		}
	})
}

// rwlockReadConcurrent: 5 goroutines × 10,000 read locks of a sync.RWMutex.
func rwlockReadConcurrent() float64 {
	var l sync.RWMutex
	value := 1
	return contend(func() {
		sum := 0
		for i := 0; i < locks; i++ {
			l.RLock()
			sum += value
			l.RUnlock()
		}
		if sum != locks {
			panic("rwlock_read_concurrent: wrong sum")
		}
	})
}

// notifyOne: a waiter goroutine waits for a notification 10,000 times and
// acknowledges each; the benchmark goroutine notifies and waits for the
// ack each time. Notify's stored permit is a one-slot channel. ns per
// notification (round trip).
func notifyOne() float64 {
	const rounds = 10_000
	notify, ack := make(chan struct{}, 1), make(chan struct{}, 1)
	start := time.Now()
	go func() {
		for i := 0; i < rounds; i++ {
			<-notify
			ack <- struct{}{}
		}
	}()
	for i := 0; i < rounds; i++ {
		notify <- struct{}{}
		<-ack
	}
	return nsPer(start, rounds)
}

// ------------------------------------------------------------------- main

func main() {
	args := peer.ParseArgs()
	known := map[string]bool{}
	for _, n := range all {
		known[n] = true
	}
	selected := map[string]bool{}
	for _, n := range args.Names {
		if !known[n] {
			fmt.Fprintf(os.Stderr, "go_bench: unknown benchmark %s (known: %s)\n", n, strings.Join(all, " "))
			os.Exit(2)
		}
		selected[n] = true
	}
	w := args.Workers
	reps, big := 5, 1_000_000
	if args.Quick {
		reps, big = 3, 100_000
	}
	bodies := map[string]func() float64{
		"ctx_switch":                ctxSwitch,
		"spawn_many":                spawnMany,
		"spawn_join_1m":             func() float64 { return spawnJoin(big) },
		"yield_many":                yieldMany,
		"chained_spawn":             chainedSpawn,
		"ping_pong":                 pingPong,
		"chan_contention_bounded":   func() float64 { return chanContention(1_000) },
		"chan_contention_unbounded": func() float64 { return chanContention(producers * messages) },
		"mutex_contention":          mutexContention,
		"sem_concurrent":            semConcurrent,
		"rwlock_read_concurrent":    rwlockReadConcurrent,
		"notify_one":                notifyOne,
	}
	for _, name := range all {
		if len(selected) > 0 && !selected[name] {
			continue
		}
		switch name {
		case "spawn_blocking":
			// No blocking pool in Go: nothing to measure (see the top).
		case "parked_1m":
			// Two decimals, as tokio_bench prints it.
			fmt.Printf("parked_1m %d %.2f\n", w, measure(1, func() float64 { return parked(big) }))
		default:
			fmt.Printf("%s %d %.1f\n", name, w, measure(reps, bodies[name]))
		}
	}
}
