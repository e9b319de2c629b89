package kubeconfig

import (
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"
)

// Encode returns a kubeconfig's file content, for a caller that writes it
// itself (as part of a store.Transaction).
func Encode(path string, cfg *api.Config) ([]byte, error) {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", path, err)
	}
	return data, nil
}
