// Command client discovers the instances of a service in etcd through
// fulcrum://etcd/<name> and sends RPCs until every registered instance has
// answered.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

var (
	etcdAddr = flag.String("etcd", "127.0.0.1:2379", "etcd endpoint")
	name     = flag.String("name", "echo", "service name, as given to the servers")
	want     = flag.Int("want", 1, "wait until at least this many instances are registered")
	timeout  = flag.Duration("timeout", 30*time.Second, "give up after this long")
)

const serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{}}]}`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*etcdAddr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // etcd's client logs every retry; errors reach us anyway
	})
	if err != nil {
		return fmt.Errorf("etcd client: %v", err)
	}
	defer cli.Close() // after the channel below: defers run last-in first-out

	// The source is registered under the name the target uses:
	// fulcrum://etcd/<name>.
	src, err := etcd.NewSource(cli, etcd.Options{})
	if err != nil {
		return err
	}
	fresolver.RegisterSource("etcd", src)

	target := "fulcrum://etcd/" + *name
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// Keep sending until every instance registered right now has answered:
	// the registry, read directly, is the reference the resolver must match.
	prefix := etcd.DefaultPrefix + "/" + *name + "/"
	answered := make(map[string]int)
	for {
		registered, err := instances(ctx, cli, prefix)
		if err != nil {
			return fmt.Errorf("listing %s: %v", prefix, err)
		}
		missing := 0
		for _, a := range registered {
			if answered[a] == 0 {
				missing++
			}
		}
		if len(registered) >= *want && missing == 0 {
			fmt.Printf("registered under %s: %s\n", prefix, strings.Join(registered, ", "))
			var counts []string
			for _, a := range registered {
				counts = append(counts, fmt.Sprintf("%s %d", a, answered[a]))
			}
			fmt.Printf("answers: %s\n", strings.Join(counts, ", "))
			fmt.Printf("OK: reached all %d instances registered under %s through %s\n", len(registered), prefix, target)
			return nil
		}
		for range 10 {
			resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
			if ctx.Err() != nil {
				return fmt.Errorf("after %v: %d instances registered under %s (want >= %d: %s), answers from %d (%v)",
					*timeout, len(registered), prefix, *want, strings.Join(registered, ", "), len(answered), keys(answered))
			}
			if err == nil {
				answered[resp.GetHostname()]++
			}
		}
	}
}

// instances returns the first address of every instance registered under
// prefix, sorted. Values are {"addresses":[...],...} or a bare host:port.
func instances(ctx context.Context, cli *clientv3.Client, prefix string) ([]string, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, kv := range resp.Kvs {
		if strings.Contains(strings.TrimPrefix(string(kv.Key), prefix), "/") {
			continue // an instance of a deeper service name
		}
		var v struct {
			Addresses []string `json:"addresses"`
		}
		switch {
		case json.Unmarshal(kv.Value, &v) == nil && len(v.Addresses) > 0:
			addrs = append(addrs, v.Addresses[0])
		case !strings.HasPrefix(string(kv.Value), "{"):
			addrs = append(addrs, string(kv.Value))
		}
	}
	slices.Sort(addrs)
	return addrs, nil
}

func keys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
