// Command devetcd runs a single-member etcd on 127.0.0.1:2379 with its data
// in a temporary directory, for trying the example without installing etcd.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

var (
	client = flag.String("listen", "127.0.0.1:2379", "client address")
	peer   = flag.String("peer", "127.0.0.1:2380", "peer address (unused by a single member, but etcd needs one)")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	dir, err := os.MkdirTemp("", "devetcd-")
	if err != nil {
		log.Fatalf("devetcd: %v", err)
	}
	defer os.RemoveAll(dir)

	cu := url.URL{Scheme: "http", Host: *client}
	pu := url.URL{Scheme: "http", Host: *peer}
	cfg := embed.NewConfig()
	cfg.Name = "devetcd"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("devetcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		log.Fatal("devetcd: etcd not ready after 30s")
	}
	fmt.Printf("etcd ready on %s (data in %s, removed on exit)\n", *client, dir)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	e.Close()
}
