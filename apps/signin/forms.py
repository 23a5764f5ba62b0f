from django import forms


class LoginForm(forms.Form):
    # RFC 5321 §4.5.3.1.3: an address is at most 254 octets. A password is capped only to
    # bound the hash's input (NIST SP 800-63B §5.1.1.2: at least 64 characters allowed).
    email = forms.EmailField(max_length=254)
    password = forms.CharField(max_length=1024, strip=False)
