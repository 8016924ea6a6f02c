// Package rawsock opens the AF_PACKET sockets the relay captures and injects
// Ethernet frames with, bound to one interface.
//
// Per packet(7), a socket bound with protocol ETH_P_ALL sees frames leaving
// the interface as well as arriving ones, which is how broadcasts from
// clients on the relay's own host get captured. The inject socket sets
// SO_MARK, and the capture socket's BPF program drops frames carrying that
// mark, so the relay never captures its own injections while it still
// captures every other local sender.
package rawsock
