package deviceplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registerTimeout bounds one Register call.
const registerTimeout = 5 * time.Second

// Register tells kubelet (its socket in pluginDir) about the plugin serving
// fullName on SocketName(fullName) in the same directory.
func Register(ctx context.Context, pluginDir, fullName string) error {
	sock := filepath.Join(pluginDir, KubeletSocketName)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("resource %s: dial kubelet %s: %w", fullName, sock, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     SocketName(fullName),
		ResourceName: fullName,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("resource %s: register with kubelet %s: %w", fullName, sock, err)
	}
	return nil
}

// fileID identifies a file's incarnation (device, inode and change time:
// a new kubelet.sock may get the inode of the one just removed), zero when
// absent.
type fileID struct {
	dev, ino uint64
	ctime    int64 // nanoseconds
}

func statID(path string) fileID {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{uint64(st.Dev), st.Ino, st.Ctim.Nano()}
}
