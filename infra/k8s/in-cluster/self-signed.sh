#!/usr/bin/env bash
# Without cert-manager: a private CA and a serving certificate for sigward.sigward.svc, stored as the sigward-tls
# Secret, and the CA written into both webhook configurations' caBundle. Re-run before the certificate expires
# (825 days); sigward picks up the new Secret contents without a restart.
#   bash infra/k8s/in-cluster/self-signed.sh && kubectl apply -k infra/k8s/in-cluster   (drop certificate.yaml)
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -subj /CN=sigward-ca -days 3650 -out "$dir/ca.crt"
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/tls.key"
openssl req -new -key "$dir/tls.key" -subj /CN=sigward.sigward.svc -out "$dir/tls.csr"
printf 'subjectAltName=DNS:sigward.sigward.svc,DNS:sigward.sigward.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > "$dir/ext"
openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
  -extfile "$dir/ext" -out "$dir/tls.crt"
kubectl get namespace sigward >/dev/null 2>&1 || kubectl create namespace sigward
kubectl -n sigward create secret tls sigward-tls --cert="$dir/tls.crt" --key="$dir/tls.key" \
  --dry-run=client -o yaml | kubectl apply -f -
bundle=$(base64 -w0 < "$dir/ca.crt")
for kind in mutatingwebhookconfiguration validatingwebhookconfiguration; do
  if kubectl get "$kind" sigward >/dev/null 2>&1; then
    kubectl patch "$kind" sigward --type=json -p "[{\"op\":\"replace\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$bundle\"}]"
  fi
done
echo "caBundle: $bundle"
