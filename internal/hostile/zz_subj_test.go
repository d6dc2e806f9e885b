package hostile
import ("testing";"fmt";"golang.org/x/crypto/ssh")
func TestPrintSubj(t *testing.T){ s,_:=Signer("subject"); fmt.Printf("%s", ssh.MarshalAuthorizedKey(s.PublicKey())) }
