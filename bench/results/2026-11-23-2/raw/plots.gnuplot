set terminal pngcairo size 900,560 font 'sans,10'
set output "throughput.png"
set title "TCP goodput through nfpipe routers"
set xlabel "router hops"
set ylabel "Gbit/s"
set key top right
set grid
unset logscale
set xrange [0:*]
set yrange [0:*]
plot 'raw/throughput.dat' index 0 with linespoints lw 2 title "seqpacket, MTU 1500", 'raw/throughput.dat' index 1 with linespoints lw 2 title "seqpacket, MTU 1500, gso off", 'raw/throughput.dat' index 2 with linespoints lw 2 title "seqpacket, MTU 65000", 'raw/throughput.dat' index 3 with linespoints lw 2 title "pipe, MTU 1500", 'raw/throughput.dat' index 4 with linespoints lw 2 title "pipe, MTU 65000", 'raw/throughput.dat' index 5 with linespoints lw 2 title "stream, MTU 1500", 'raw/throughput.dat' index 6 with linespoints lw 2 title "stream, MTU 65000"
set output "pps.png"
set title "64-byte UDP through nfpipe routers"
set xlabel "offered (kpps)"
set ylabel "delivered (kpps)"
set key top right
set grid
unset logscale
set xrange [0:*]
set yrange [0:*]
plot 'raw/pps.dat' index 0 with linespoints lw 2 title "1 hop", 'raw/pps.dat' index 1 with linespoints lw 2 title "4 hops", x with lines dt 2 lc rgb 'gray' title 'offered'
set output 'latency-cdf.png'
set title 'Round-trip time (CDF)'
set xlabel 'RTT (µs)'
set ylabel 'fraction of pings'
set key bottom right
set grid
set logscale x
set xrange [*:*]
set yrange [0:1]
plot 'raw/latency.dat' index 0 with lines lw 2 title "C relay (epoll, recv, send) × 4 between nfpipe hosts", 'raw/latency.dat' index 1 with lines lw 2 title "Go relay, blocking in epoll_wait on its own thread × 4 between nfpipe hosts", 'raw/latency.dat' index 2 with lines lw 2 title "Go relay, waiting in Go's poller (as nfpipe's links do) × 4 between nfpipe hosts", 'raw/latency.dat' index 3 with lines lw 2 title "kernel → Linux kernel router → kernel", 'raw/latency.dat' index 4 with lines lw 2 title "kernel → nfpipe router (TAP) → kernel", 'raw/latency.dat' index 5 with lines lw 2 title "kernel ↔ kernel, veth pair (no hop)", 'raw/latency.dat' index 6 with lines lw 2 title "nfpipe chain, 0 hops", 'raw/latency.dat' index 7 with lines lw 2 title "nfpipe chain, 0 hops, --cpus all (the kernel places every process)", 'raw/latency.dat' index 8 with lines lw 2 title "nfpipe chain, 1 hop", 'raw/latency.dat' index 9 with lines lw 2 title "nfpipe chain, 1 hop, --cpus all (the kernel places every process)", 'raw/latency.dat' index 10 with lines lw 2 title "nfpipe chain, 4 hops", 'raw/latency.dat' index 11 with lines lw 2 title "nfpipe chain, 4 hops, --cpus all (the kernel places every process)", 'raw/latency.dat' index 12 with lines lw 2 title "two Go processes, ping-pong over a socketpair (wake-up floor of two crossings)"
