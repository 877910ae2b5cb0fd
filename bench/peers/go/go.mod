// Go peer of magpie's benchmarks and example servers: standard library
// only, built offline by bench/peers/build.sh (GOFLAGS=-mod=mod GOPROXY=off).
module magpie/bench/peers/go

go 1.19
