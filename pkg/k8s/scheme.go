package k8s

import (
	"sync"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadscheme "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned/scheme"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// coreScheme holds only the core/v1 types plexus reads and writes (Pod and
// Event) instead of client-go's full clientset scheme, whose package init
// alone costs several milliseconds on every exec. It is built on first use,
// so that importing this package costs nothing in clusterless mode.
var coreCodecs = sync.OnceValue(func() serializer.CodecFactory {
	s := runtime.NewScheme()
	s.AddKnownTypes(corev1.SchemeGroupVersion, &corev1.Pod{}, &corev1.PodList{}, &corev1.Event{})
	metav1.AddToGroupVersion(s, corev1.SchemeGroupVersion)
	return serializer.NewCodecFactory(s)
})

const (
	contentProtobuf = "application/vnd.kubernetes.protobuf"
	contentJSON     = "application/json"
)

// coreConfig is cfg for the legacy core group, speaking protobuf.
func coreConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	gv := corev1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/api"
	c.NegotiatedSerializer = coreCodecs().WithoutConversion()
	c.ContentType = contentProtobuf
	c.AcceptContentTypes = contentProtobuf + "," + contentJSON
	return c
}

// nadConfig is cfg for k8s.cni.cncf.io/v1; a CRD speaks JSON only.
func nadConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	gv := nadv1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = nadscheme.Codecs.WithoutConversion()
	c.ContentType = contentJSON
	c.AcceptContentTypes = contentJSON
	return c
}
