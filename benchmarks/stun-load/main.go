// stun-load sends STUN Binding requests (RFC 8489) over UDP from several sockets, each keeping a window
// of requests in flight, for a fixed time, and prints how many were answered per second and the answers'
// latency. It checks each answer's transaction ID and that it is a Binding success response.
//
// Usage: stun-load -server 127.0.0.1:3478 -sockets 8 -window 16 -seconds 10
package main

import (
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const cookie = 0x2112A442

func request(transaction []byte) []byte {
	message := make([]byte, 20)
	binary.BigEndian.PutUint16(message[0:], 0x0001)
	binary.BigEndian.PutUint16(message[2:], 0)
	binary.BigEndian.PutUint32(message[4:], cookie)
	copy(message[8:], transaction)
	return message
}

func main() {
	server := flag.String("server", "127.0.0.1:3478", "the STUN server, HOST:PORT")
	sockets := flag.Int("sockets", 8, "UDP sockets, each a client address")
	window := flag.Int("window", 16, "requests in flight per socket")
	seconds := flag.Int("seconds", 10, "how long to send")
	flag.Parse()
	address, err := net.ResolveUDPAddr("udp", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var answered, lost, wrong int64
	var mutex sync.Mutex
	var latencies []time.Duration
	deadline := time.Now().Add(time.Duration(*seconds) * time.Second)
	var group sync.WaitGroup
	for index := 0; index < *sockets; index++ {
		group.Add(1)
		go func() {
			defer group.Done()
			connection, err := net.DialUDP("udp", nil, address)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			defer connection.Close()
			sent := map[string]time.Time{}
			send := func() {
				transaction := make([]byte, 12)
				rand.Read(transaction)
				sent[string(transaction)] = time.Now()
				connection.Write(request(transaction))
			}
			for i := 0; i < *window; i++ {
				send()
			}
			buffer := make([]byte, 1500)
			var own []time.Duration
			for time.Now().Before(deadline) {
				connection.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := connection.Read(buffer)
				if err != nil {
					// A timeout: what is in flight is lost; start the window again.
					atomic.AddInt64(&lost, int64(len(sent)))
					sent = map[string]time.Time{}
					for i := 0; i < *window; i++ {
						send()
					}
					continue
				}
				if n < 20 || binary.BigEndian.Uint16(buffer[0:]) != 0x0101 {
					atomic.AddInt64(&wrong, 1)
					continue
				}
				started, ok := sent[string(buffer[8:20])]
				if !ok {
					atomic.AddInt64(&wrong, 1)
					continue
				}
				delete(sent, string(buffer[8:20]))
				own = append(own, time.Since(started))
				atomic.AddInt64(&answered, 1)
				send()
			}
			mutex.Lock()
			latencies = append(latencies, own...)
			mutex.Unlock()
		}()
	}
	group.Wait()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	percentile := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) / 1000
	}
	fmt.Printf("answered=%d per_second=%.0f lost=%d wrong=%d p50_ms=%.3f p99_ms=%.3f\n", answered,
		float64(answered)/float64(*seconds), lost, wrong, percentile(0.5), percentile(0.99))
}
